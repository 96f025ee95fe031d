"""The paper's reported rows, and the markdown form every results table is printed in.

Kept apart from the records (``results``) and the run frames (``report``) so that both read them
without importing each other.
"""

from __future__ import annotations

import polars as pl

PAPER: dict[str, dict[str, float]] = {
    "lightgcn": {"precision@5": 0.2772, "recall@5": 0.1070, "precision@10": 0.2330, "recall@10": 0.1721,
                 "precision@20": 0.1855, "recall@20": 0.2571},
    "pngnn": {"precision@5": 0.3164, "recall@5": 0.1165, "precision@10": 0.2687, "recall@10": 0.1871,
              "precision@20": 0.2151, "recall@20": 0.2915},
    "llm-pngnn": {"precision@5": 0.3288, "recall@5": 0.1260, "precision@10": 0.2737, "recall@10": 0.1978,
                  "precision@20": 0.2171, "recall@20": 0.2930},
}


def to_markdown(frame: pl.DataFrame) -> str:
    cols = frame.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join(lines)
