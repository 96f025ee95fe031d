"""Speed of the training hot paths on ML-1M split 1 with the paper's settings.

For LightGCN and PN-GNN (and PN-GNN at the larger dims its tuning searches), times in one
process: one sparse product A_hat @ E; a 4-layer propagation forward and backward through the
custom symmetric autograd function and through torch's built-in sparse autograd; full training epochs (negative sampling
included); one full-ranking evaluation. Prints the figures and writes them as JSON, with
the machine and each epoch's lower bound (sparse products per epoch x time of one product).

    PNGNN_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_training.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pngnn.augment.edges import load_split_step
from pngnn.core.profiles import get_profile
from pngnn.core.settings import Settings
from pngnn.data.prepare import ingest_step, split_step
from pngnn.data.split import SplitData
from pngnn.models.graph import propagate, propagate_autograd
from pngnn.training.device import use_device
from pngnn.training.outcome import evaluate_step
from pngnn.training.train import PairPlan, build_lightgcn, build_pngnn, fit, lightgcn_edges, pngnn_pair_plan


def timed(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times), "repeats": repeats}


def bench_method(method: str, split: SplitData, epochs: int, device: torch.device, dim: int | None = None) -> dict:
    cfg = get_profile("paper").train.with_overrides(epochs=epochs, **({"dim": dim} if dim else {}))
    if method == "lightgcn":
        model = build_lightgcn(split, cfg)
        plan = PairPlan(lightgcn_edges(split, cfg))
    else:
        # The default Dual-BPR reading's pairs, exactly as `pngnn train` draws them.
        model = build_pngnn(split, cfg)
        plan = pngnn_pair_plan(split.train, split.n_users, cfg)
    pairs = plan.pairs
    model = model.to(device)
    model.adj = model.adj.to(device)
    adj, emb = model.adj, model.embedding.weight
    x = torch.randn_like(emb)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def one_product() -> None:
        torch.sparse.mm(adj, x)
        sync()

    def custom() -> None:
        propagate(adj, emb, cfg.layers).sum().backward()
        sync()

    def builtin() -> None:
        propagate_autograd(adj, emb, cfg.layers).sum().backward()
        sync()

    product = timed(one_product, 20)
    prop_custom = timed(custom, 10)
    prop_builtin = timed(builtin, 5)
    epoch_times: list[float] = []
    # fit trains on the device of use_device (it moves the model there), not on the model's own: without
    # the block it would train on the CPU and time CPU epochs under a CUDA label.
    with use_device(device):
        fit(model, pairs, split.train, split.n_users, split.n_items, cfg, pair_features=plan.pair_features,
            epoch_features=plan.epoch_features, on_epoch=lambda e: epoch_times.append(e.seconds), progress=False)
        trained_on = next(model.parameters()).device
        _, eval_seconds = evaluate_step(model, split, cfg.threshold)
    if trained_on.type != device.type:
        raise RuntimeError(f"asked for {device}, trained on {trained_on}")
    n_batches = -(-len(pairs) // cfg.batch_size)
    products_per_epoch = n_batches * 2 * cfg.layers
    bound = products_per_epoch * product["median_ms"] / 1000
    return {
        "graph": {"nodes": adj.shape[0], "nnz": int(adj.values().numel()), "train_pairs": len(pairs)},
        "settings": {"dim": cfg.dim, "layers": cfg.layers, "batch_size": cfg.batch_size, "n_neg": cfg.n_neg,
                     "pair_sampling": cfg.pair_sampling,
                     **({"dual_bpr": cfg.dual_bpr, "b": cfg.b} if method == "pngnn" else {})},
        "sparse_product_ms": product["median_ms"],
        "propagation_fwd_bwd_custom_ms": prop_custom["median_ms"],
        "propagation_fwd_bwd_builtin_ms": prop_builtin["median_ms"],
        "custom_speedup": prop_builtin["median_ms"] / prop_custom["median_ms"],
        "epoch_seconds": epoch_times,
        "epoch_seconds_best": min(epoch_times),
        "batches_per_epoch": n_batches,
        "sparse_products_per_epoch": products_per_epoch,
        "epoch_bound_seconds": bound,
        "epoch_over_bound": min(epoch_times) / bound,
        "evaluation_seconds": eval_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs timed per method")
    parser.add_argument("--method", action="append", choices=["lightgcn", "pngnn"],
                        help="repeatable; default: both")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pngnn-dims", type=int, nargs="*", default=[128, 256],
                        help="also time PN-GNN at these dims (the tuning search space's capacities)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/training_speed.json"))
    args = parser.parse_args()

    settings = Settings.from_env()
    ingest_step(settings, args.dataset)
    split_step(settings, args.dataset, args.seed)
    split = load_split_step(settings, args.dataset, args.seed)
    device = torch.device(args.device)
    figures = {
        "benchmark": "training_speed",
        "dataset": args.dataset,
        "split_seed": args.seed,
        "device": str(device),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for method in args.method or ["lightgcn", "pngnn"]:
        figures[method] = bench_method(method, split, args.epochs, device)
        print(method, json.dumps(figures[method], indent=2), flush=True)
    if "pngnn" in (args.method or ["pngnn"]):
        for dim in args.pngnn_dims:
            figures[f"pngnn_dim{dim}"] = bench_method("pngnn", split, args.epochs, device, dim=dim)
            print(f"pngnn dim {dim}", json.dumps(figures[f"pngnn_dim{dim}"], indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
