"""What ``ease_max_items`` costs: EASE and PN-EASE fitted on the N most-rated items of ML-1M split 1.

A catalogue too big for one n x n matrix is fitted on its most-rated items (``pngnn.models.gram``
names the N that fits); the rest are never recommended. This measures the accuracy that costs on
a catalogue small enough to fit whole: each model's tuned split-1 configuration at N = all (3,706),
2,000, 1,000 and 500 items, full ranking on the test part (the left-out items can still be hits
that the model now never ranks). Writes benchmarks/results/ease_pruning.json.

    PNGNN_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_ease_pruning.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pngnn.augment.edges import load_split_step
from pngnn.core.profiles import get_profile
from pngnn.core.settings import Settings
from pngnn.data.prepare import ingest_step, split_step
from pngnn.training.methods import train_method
from pngnn.training.outcome import evaluate_step

SIZES = (0, 2000, 1000, 500)  # 0: every item
COLUMNS = ("precision@5", "recall@5", "precision@10", "recall@10", "precision@20", "recall@20", "ndcg@20")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ease_pruning.json"))
    parser.add_argument("--db", type=Path, default=Path("benchmarks/out/pruning.duckdb"))
    args = parser.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env().model_copy(update={"db_path": args.db})
    ingest_step(settings, "ml-1m")
    split_step(settings, "ml-1m", 1)
    split = load_split_step(settings, "ml-1m", 1)
    rows = []
    for method in ("ease", "pn-ease"):
        base = get_profile(f"{method}-ml-1m", settings).config_for(1)
        for size in SIZES:
            cfg = base.with_overrides(ease_max_items=size)
            t0 = time.perf_counter()
            model = train_method(method, split, cfg).model
            fit_s = time.perf_counter() - t0
            metrics, _ = evaluate_step(model, split, cfg.threshold)
            rows.append({"method": method, "max_items": size or split.n_items, "fit_seconds": round(fit_s, 2),
                         **{k: round(metrics[k], 4) for k in COLUMNS}})
            print(rows[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dataset": "ml-1m", "split_seed": 1, "n_items": split.n_items, "rows": rows},
                                   indent=2) + "\n")


if __name__ == "__main__":
    main()
