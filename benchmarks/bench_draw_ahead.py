"""What drawing the next epoch while one trains (``pngnn.training.draw_ahead``) saves: PN-GNN fits of a
few epochs on the synthetic graph, with the draws ahead and in line, alternating in one process, and
the seconds of one epoch's draws (pair order, negatives, disliked items) alone.

Why alternating: this machine's speed varies 2x from one run to the next, so the two settings are
timed round after round in the same process and compared as a ratio of medians.

    PNGNN_DATA_DIR=../shared/data python benchmarks/bench_draw_ahead.py --size 1000000 --epochs 3

Results: ``benchmarks/results/draw_ahead.json`` (one entry per size).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scaling import common_arguments, machine, read_runs, synthetic_ratings

RESULTS = Path(__file__).resolve().parent / "results"


def run(size: int, epochs: int, rounds: int, data_dir: Path, seed: int) -> dict[str, Any]:
    from pngnn.core.config import TrainConfig
    from pngnn.core.profiles import get_profile
    from pngnn.data.split import Interactions, SplitData
    from pngnn.models.sampling import EpochPairOrder, NegativeSampler
    from pngnn.training.train import pngnn_pair_plan, train_pngnn

    g = synthetic_ratings(size, data_dir, seed=seed)
    train = Interactions(g["users"], g["items"], g["ratings"])
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    split = SplitData("synthetic", seed, g["n_users"], g["n_items"], train, empty, empty)
    # the paper profile at the default step cap, as the end-to-end run trains at scale
    cfg = get_profile("paper").train.with_overrides(epochs=epochs, eval_every=0, seed=seed,
                                                    max_batches=TrainConfig().max_batches)

    plan = pngnn_pair_plan(split.train, split.n_users, cfg)
    sampler = NegativeSampler(train.users, train.items, split.n_users, split.n_items, cfg.neg_exponent, seed=seed)
    pair_order = EpochPairOrder(plan.pairs.users, split.n_users, cfg.pair_sampling)
    rng = np.random.default_rng(seed)
    draw_seconds = []
    for _ in range(3):
        t0 = time.perf_counter()
        order = pair_order.draw(rng)
        sampler.sample(plan.pairs.users[order], cfg.n_neg)
        if plan.epoch_features is not None:
            plan.epoch_features()
        draw_seconds.append(time.perf_counter() - t0)

    epoch_seconds: dict[str, list[float]] = {"ahead": [], "in_line": []}
    losses: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name in epoch_seconds:
            result = train_pngnn(split, cfg, progress=False, draw_ahead=name == "ahead")
            # the first epoch draws in line either way: the gain is on the epochs after it
            epoch_seconds[name] += [e.seconds for e in result.history[1:]]
            losses[name] = [e.loss for e in result.history]
    ahead, in_line = (statistics.median(epoch_seconds[k]) for k in ("ahead", "in_line"))
    return {"n_ratings": size, "n_pairs": len(plan.pairs), "n_neg": cfg.n_neg, "epochs": epochs, "rounds": rounds,
            "draw_s": [round(t, 3) for t in draw_seconds], "median_draw_s": round(statistics.median(draw_seconds), 3),
            "epoch_s": {k: [round(t, 2) for t in v] for k, v in epoch_seconds.items()},
            "median_epoch_s": {"ahead": round(ahead, 2), "in_line": round(in_line, 2)},
            "in_line_over_ahead": round(in_line / ahead, 3),
            "same_losses": losses["ahead"] == losses["in_line"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="ratings of the synthetic graph")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    common_arguments(parser, RESULTS / "draw_ahead.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results = read_runs(args.out, "draw_ahead")
    t0 = time.perf_counter()
    entry = {**run(args.size, args.epochs, args.rounds, Path(args.data_dir), args.seed), "machine": machine(args),
             "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "wall_s": round(time.perf_counter() - t0, 1)}
    results["runs"] = [r for r in results["runs"] if r["n_ratings"] != args.size] + [entry]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{args.size:,} ratings: draws {entry['median_draw_s']} s an epoch; epoch {entry['median_epoch_s']} "
          f"(in line / ahead {entry['in_line_over_ahead']}); same losses: {entry['same_losses']}", flush=True)


if __name__ == "__main__":
    main()
