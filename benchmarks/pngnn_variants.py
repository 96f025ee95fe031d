"""PN-GNN's Dual-BPR readings and attention on ML-100K: a fast screen before ML-1M runs.

Every variant is trained the same short way (split seed 1, 40 epochs, batch 2048, 10
negatives, L2 0.05, the paper's dim/lr/layers) next to LightGCN on the positive graph and
on all ratings; test metrics and the attention summary go to JSON. A screen, not the
result: the paper-profile ablation on ML-1M is ``pngnn train --method pngnn --profile paper``.

    PNGNN_DATA_DIR=../shared/data .venv/bin/python benchmarks/pngnn_variants.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pngnn.augment.edges import load_split_step
from pngnn.core.config import TrainConfig
from pngnn.core.settings import Settings
from pngnn.data.prepare import ingest_step, split_step
from pngnn.training.outcome import train_evaluate_step

VARIANTS: list[tuple[str, dict]] = [
    ("lightgcn", {}),
    ("lightgcn", {"lightgcn_graph": "all"}),
    ("pngnn", {"dual_bpr": "siren", "b": 0.0}),
    ("pngnn", {"dual_bpr": "siren", "b": 0.5}),
    ("pngnn", {"dual_bpr": "siren", "b": 1.0}),
    ("pngnn", {"dual_bpr": "siren", "b": 2.0}),
    ("pngnn", {"dual_bpr": "siren", "b": 4.0}),
    ("pngnn", {"dual_bpr": "ordered", "b": 1.0}),
    ("pngnn", {"dual_bpr": "ordered", "b": 2.0}),
    ("pngnn", {"dual_bpr": "sign"}),
    ("pngnn", {"dual_bpr": "siren", "b": 1.0, "attention": False}),
    ("pngnn", {"dual_bpr": "graded", "b": 0.0}),
    ("pngnn", {"dual_bpr": "graded", "b": 1.0}),
    ("pngnn", {"dual_bpr": "graded", "b": 2.0}),
    ("pngnn", {"dual_bpr": "graded", "b": 4.0}),
    ("pngnn", {"dual_bpr": "weighted", "b": 1.0}),
    ("pngnn", {"dual_bpr": "weighted", "b": 2.0}),
    ("pngnn", {"dual_bpr": "weighted", "b": 4.0}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pngnn_variants_ml-100k.json"))
    # The committed JSON was screened with every pair once an epoch, before the user-balanced
    # sampler became the default; "users" screens with the current default.
    parser.add_argument("--pair-sampling", choices=["edges", "users"], default="edges")
    parser.add_argument("--only", default=None,
                        help="Run only the PN-GNN variants of this Dual-BPR reading and merge them into --out.")
    args = parser.parse_args()
    settings = Settings.from_env()
    ingest_step(settings, args.dataset)
    split_step(settings, args.dataset, args.seed)
    split = load_split_step(settings, args.dataset, args.seed)
    variants = [(m, o) for m, o in VARIANTS if args.only is None or o.get("dual_bpr") == args.only]
    rows = []
    for method, overrides in variants:
        cfg = TrainConfig(epochs=args.epochs, batch_size=2048, n_neg=10, l2=0.05, pair_sampling=args.pair_sampling,
                          **overrides)
        outcome = train_evaluate_step(split, method, cfg, progress=False)
        summary = getattr(outcome.train.model, "attention_summary", None)
        row = {"method": method, "overrides": overrides, "metrics": outcome.metrics,
               "train_seconds": outcome.train.seconds, "alpha": summary() if summary else None}
        rows.append(row)
        m = outcome.metrics
        print(f"{method} {overrides}: P@5 {m['precision@5']:.4f} P@10 {m['precision@10']:.4f} "
              f"P@20 {m['precision@20']:.4f} R@20 {m['recall@20']:.4f}", flush=True)
    if args.only is not None and args.out.exists():  # keep the other variants' rows
        ran = [(r["method"], r["overrides"]) for r in rows]
        old = json.loads(args.out.read_text())["runs"]
        rows = [r for r in old if (r["method"], r["overrides"]) not in ran] + rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dataset": args.dataset, "split_seed": args.seed, "epochs": args.epochs,
                                    "pair_sampling": args.pair_sampling, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                    "runs": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
