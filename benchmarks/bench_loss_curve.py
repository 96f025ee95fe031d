"""The first epochs' training losses on ML-1M split 1 (paper settings), to compare two versions.

A speed change to the training step must leave the loss curve where it was (same pairs, same
negatives, same value to float tolerance). Run it on the old code with ``--out`` and on the new
one with ``--reference`` set to the old file: it writes both curves and their largest relative
difference per method.

    PNGNN_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_loss_curve.py \
        --out benchmarks/results/loss_curve.json --reference benchmarks/results/loss_curve_before.json
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
from pngnn.training.train import EpochLog, train_lightgcn, train_pngnn

TRAINERS = {"lightgcn": train_lightgcn, "pngnn": train_pngnn}


def curve(method: str, split, epochs: int) -> list[dict[str, float]]:
    cfg = get_profile("paper").train.with_overrides(epochs=epochs, eval_every=0)
    logs: list[EpochLog] = []
    TRAINERS[method](split, cfg, on_epoch=logs.append, progress=False)
    return [{"epoch": e.epoch, "loss": e.loss, "seconds": e.seconds, **e.parts} for e in logs]


def largest_relative_difference(new: list[dict], old: list[dict]) -> float:
    return max(abs(a["loss"] - b["loss"]) / abs(b["loss"]) for a, b in zip(new, old, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/loss_curve.json"))
    parser.add_argument("--reference", type=Path, help="an earlier run of this script to compare against")
    args = parser.parse_args()

    settings = Settings.from_env()
    ingest_step(settings, args.dataset)
    split_step(settings, args.dataset, args.seed)
    split = load_split_step(settings, args.dataset, args.seed)
    figures: dict = {"benchmark": "loss_curve", "dataset": args.dataset, "split_seed": args.seed,
                     "profile": "paper", "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "curves": {}}
    reference = json.loads(args.reference.read_text()) if args.reference else None
    for method in TRAINERS:
        figures["curves"][method] = curve(method, split, args.epochs)
        if reference is not None:
            figures.setdefault("largest_relative_difference", {})[method] = largest_relative_difference(
                figures["curves"][method], reference["curves"][method])
        print(method, json.dumps(figures["curves"][method]), flush=True)
    if reference is not None:
        figures["reference"] = {"file": str(args.reference), "created": reference["created"],
                                "curves": reference["curves"]}
        print("largest relative difference", figures["largest_relative_difference"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
