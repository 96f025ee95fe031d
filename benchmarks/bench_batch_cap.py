"""What the step cap (``max_batches``, pngnn/training/schedule.py) does to an epoch's cost: the paper's
fixed batch of 4,096 against the capped batch, timed in one process on the same graph, alternating;
beside them the alternative that keeps the steps and cuts the loss side, fewer negatives (10
instead of 40), and the cap of 32 steps that the end-to-end run uses at 20M.

Why alternating: this machine is shared and its speed varies 2x from one run to the next, so two
runs of ``bench_scaling.py`` (one per setting) cannot be compared. Here each round times a few
batches of each size back to back on the same model, so both see the same load; the epoch of each
setting is its median seconds a batch (training + drawing the negatives) x its batches an epoch.

    PNGNN_DATA_DIR=../shared/data python benchmarks/bench_batch_cap.py --size 5000000 --threads 1

Results: ``benchmarks/results/batch_cap.json`` (one entry per size and model).
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
from bench_scaling import MODELS, common_arguments, machine, read_runs, synthetic_ratings

RESULTS = Path(__file__).resolve().parent / "results"


def time_batches(model: Any, opt: Any, pairs: Any, feats: dict[str, Any], sampler: Any, order: np.ndarray,
                 start: int, batch: int, count: int, n_neg: int) -> tuple[list[float], int]:
    """Seconds of each of ``count`` batches of ``batch`` pairs from ``order[start:]`` (negatives drawn
    per batch, as a share of the epoch's draw), and where the next batch starts."""
    import torch

    from pngnn.training.train import train_epoch

    seconds = []
    for _ in range(count):
        if start + batch > len(order):
            start = 0
        rows = order[start:start + batch]
        t0 = time.perf_counter()
        negatives = sampler.sample(pairs.users[rows], n_neg)
        users_t, items_t = torch.from_numpy(pairs.users), torch.from_numpy(pairs.items)
        feats_t = {k: torch.from_numpy(v) for k, v in feats.items()}
        train_epoch(model, opt, users_t, items_t, rows, negatives, feats_t, batch, "timed", False)
        seconds.append(time.perf_counter() - t0)
        start += batch
    return seconds, start


def run(size: int, model_name: str, rounds: int, per_round: int, data_dir: Path, seed: int) -> dict[str, Any]:
    import torch

    from pngnn.core.profiles import get_profile
    from pngnn.data.split import Interactions, SplitData
    from pngnn.models.sampling import EpochPairOrder, NegativeSampler
    from pngnn.training.schedule import batch_schedule
    from pngnn.training.train import PairPlan, build_lightgcn, build_pngnn, lightgcn_edges, pngnn_pair_plan

    g = synthetic_ratings(size, data_dir, seed=seed)
    train = Interactions(g["users"], g["items"], g["ratings"])
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    split = SplitData("synthetic", seed, g["n_users"], g["n_items"], train, empty, empty)
    cfg = get_profile("paper").train
    if model_name == "lightgcn":
        model, plan = build_lightgcn(split, cfg), PairPlan(lightgcn_edges(split, cfg))
    else:
        model, plan = build_pngnn(split, cfg), pngnn_pair_plan(split.train, split.n_users, cfg)
    pairs = plan.pairs
    # name -> (schedule, negatives a pair): the paper's batch, the default cap (256 steps), the cap the
    # end-to-end run uses at scale (32), and fewer negatives at the paper's batch and at the cap
    variants = {
        "fixed": (batch_schedule(cfg.with_overrides(max_batches=0), len(pairs)), cfg.n_neg),
        "capped": (batch_schedule(cfg, len(pairs)), cfg.n_neg),
        "capped32": (batch_schedule(cfg.with_overrides(max_batches=32), len(pairs)), cfg.n_neg),
        "fixed_neg10": (batch_schedule(cfg.with_overrides(max_batches=0), len(pairs)), 10),
        "capped_neg10": (batch_schedule(cfg, len(pairs)), 10),
    }
    feats = {**(plan.pair_features or {}), **(plan.epoch_features() if plan.epoch_features else {})}
    sampler = NegativeSampler(train.users, train.items, split.n_users, split.n_items, cfg.neg_exponent, seed=seed)
    order = EpochPairOrder(pairs.users, split.n_users, cfg.pair_sampling).draw(np.random.default_rng(seed))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    times: dict[str, list[float]] = {name: [] for name in variants}
    start = 0
    _, start = time_batches(model, opt, pairs, feats, sampler, order, start, cfg.batch_size, 1, cfg.n_neg)  # warm
    for _ in range(rounds):
        for name, (schedule, n_neg) in variants.items():
            seconds, start = time_batches(model, opt, pairs, feats, sampler, order, start, schedule.batch_size,
                                          per_round, n_neg)
            times[name] += seconds
    out: dict[str, Any] = {"n_ratings": size, "model": model_name, "n_pairs": len(pairs),
                           "adjacency_nnz": int(sum(b._nnz() for _, b in model.named_buffers()
                                                    if b.layout != torch.strided))}
    for name, (schedule, n_neg) in variants.items():
        steps = -(-len(pairs) // schedule.batch_size)
        median = statistics.median(times[name])
        out[name] = {"batch_size": schedule.batch_size, "n_neg": n_neg, "lr": schedule.lr, "steps_per_epoch": steps,
                     "seconds_per_batch": [round(t, 3) for t in times[name]],
                     "median_s_per_batch": round(median, 3), "epoch_s_estimate": round(steps * median, 1)}
    out["epoch_speedup"] = round(out["fixed"]["epoch_s_estimate"] / out["capped"]["epoch_s_estimate"], 2)
    out["epoch_speedup_by_variant"] = {name: round(out["fixed"]["epoch_s_estimate"] / out[name]["epoch_s_estimate"], 2)
                                       for name in variants}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5_000_000, help="ratings of the synthetic graph")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=2, help="batches of each size a round")
    common_arguments(parser, RESULTS / "batch_cap.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results = read_runs(args.out, "batch_cap")
    for model_name in args.models.split(","):
        t0 = time.perf_counter()
        entry = {**run(args.size, model_name, args.rounds, args.per_round, Path(args.data_dir), args.seed),
                 "machine": machine(args), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "wall_s": round(time.perf_counter() - t0, 1)}
        results["runs"] = [r for r in results["runs"] if (r["n_ratings"], r["model"]) != (args.size, model_name)]
        results["runs"].append(entry)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"{model_name} {args.size:,}: fixed {entry['fixed']['median_s_per_batch']} s x "
              f"{entry['fixed']['steps_per_epoch']} = {entry['fixed']['epoch_s_estimate']} s; capped "
              f"{entry['capped']['median_s_per_batch']} s x {entry['capped']['steps_per_epoch']} = "
              f"{entry['capped']['epoch_s_estimate']} s; {entry['epoch_speedup']}x; against fixed: "
              f"{entry['epoch_speedup_by_variant']}", flush=True)


if __name__ == "__main__":
    main()
