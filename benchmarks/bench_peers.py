"""Our LightGCN training step against PyTorch Geometric's ``LightGCN``, and peak memory of a training.

In one process, on ML-1M split 1's LightGCN graph (positive train ratings, paper settings: dim 64,
4 layers, batch 4,096, 40 deg^0.75 negatives), both models train on the *same* fixed batches (pairs
and negatives drawn once, up front) with BPR + L2 and Adam, for a fixed number of batches each;
the JSON has seconds per batch of each and their ratio. PyG's model is used as its documentation
shows: ``LightGCN(num_nodes, 64, 4)`` called on the graph's ``edge_index`` (it normalises and
message-passes every call) and ``recommendation_loss``.

Peak resident memory is measured in fresh child processes (a process's peak only grows): one runs
our LightGCN batches, one PyG's, one a full PN-GNN training epoch plus evaluation on ML-1M.

torch-geometric is a benchmark-only extra (``pip install -e '.[bench]'``), never a runtime dependency.

    PNGNN_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_peers.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from pngnn.augment.edges import load_split_step
from pngnn.core.profiles import get_profile
from pngnn.core.settings import Settings
from pngnn.data.prepare import ingest_step, split_step
from pngnn.data.split import SplitData
from pngnn.models.sampling import EpochPairOrder, NegativeSampler
from pngnn.training.outcome import evaluate_step
from pngnn.training.train import build_lightgcn, lightgcn_edges, train_pngnn

DATASET, SPLIT_SEED = "ml-1m", 1


def load_split() -> SplitData:
    settings = Settings.from_env()
    ingest_step(settings, DATASET)
    split_step(settings, DATASET, SPLIT_SEED)
    return load_split_step(settings, DATASET, SPLIT_SEED)


def fixed_batches(split: SplitData, n_batches: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(users, liked items, negatives [B, N]) of ``n_batches`` batches, drawn as ``fit`` draws them."""
    cfg = get_profile("paper").train
    pairs = lightgcn_edges(split, cfg)
    order = EpochPairOrder(pairs.users, split.n_users, cfg.pair_sampling).draw(np.random.default_rng(0))
    order = order[: n_batches * cfg.batch_size]
    sampler = NegativeSampler(split.train.users, split.train.items, split.n_users, split.n_items,
                              cfg.neg_exponent, seed=0)
    neg = torch.from_numpy(sampler.sample(pairs.users[order], cfg.n_neg)).long()
    users, items = torch.from_numpy(pairs.users[order]), torch.from_numpy(pairs.items[order])
    rows = [slice(b * cfg.batch_size, (b + 1) * cfg.batch_size) for b in range(n_batches)]
    return [(users[r], items[r], neg[r]) for r in rows]


def seconds_per_batch(step, batches) -> float:
    step(*batches[0])  # warm-up
    t0 = time.perf_counter()
    for batch in batches:
        step(*batch)
    return (time.perf_counter() - t0) / len(batches)


def time_ours(split: SplitData, batches) -> float:
    """Seconds per batch of our LightGCN step (the one ``pngnn.training.train.fit`` takes)."""
    cfg = get_profile("paper").train
    model = build_lightgcn(split, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step(users, pos, neg) -> None:
        loss, _ = model.calculate_loss(users, pos, neg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return seconds_per_batch(step, batches)


def time_pyg(split: SplitData, batches) -> float:
    """Seconds per batch of PyG's LightGCN on the same graph, batches, loss and optimiser."""
    from torch_geometric.nn.models import LightGCN as PygLightGCN

    cfg = get_profile("paper").train
    edges = lightgcn_edges(split, cfg)
    keys = np.unique(edges.users.astype(np.int64) * split.n_items + edges.items)
    src, dst = keys // split.n_items, keys % split.n_items + split.n_users
    edge_index = torch.from_numpy(np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])]))
    model = PygLightGCN(split.n_users + split.n_items, cfg.dim, cfg.layers)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step(users, pos, neg) -> None:
        n_neg = neg.shape[1]
        item_rows = torch.cat([pos, neg.reshape(-1)]) + split.n_users
        label_index = torch.stack([torch.cat([users, users.repeat_interleave(n_neg)]), item_rows])
        ranks = model(edge_index, label_index)
        pos_rank, neg_rank = ranks[: len(users)].repeat_interleave(n_neg), ranks[len(users):]
        loss = model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique(), lambda_reg=cfg.l2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return seconds_per_batch(step, batches)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def rss_now_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(job: str, n_batches: int, queue) -> None:
    """Run one job in a fresh process and report its seconds and peak RSS."""
    torch.set_num_threads(int(os.environ.get("PNGNN_BENCH_THREADS", torch.get_num_threads())))
    split = load_split()
    base = peak_rss_mb()
    if job == "pngnn-training":
        cfg = get_profile("paper").train.with_overrides(epochs=1)
        t0 = time.perf_counter()
        result = train_pngnn(split, cfg, progress=False)
        evaluate_step(result.model, split, cfg.threshold)
        seconds = time.perf_counter() - t0
    else:
        batches = fixed_batches(split, n_batches)
        seconds = (time_ours if job == "ours" else time_pyg)(split, batches)
    queue.put({"job": job, "seconds": seconds, "peak_rss_mb": peak_rss_mb(),
               "peak_rss_after_loading_mb": base, "rss_at_end_mb": rss_now_mb()})


def in_child(job: str, n_batches: int) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(job, n_batches, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours-batches", type=int, default=40)
    parser.add_argument("--pyg-batches", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/peers.json"))
    args = parser.parse_args()

    split = load_split()
    batches = fixed_batches(split, max(args.ours_batches, args.pyg_batches))
    ours = time_ours(split, batches[: args.ours_batches])
    pyg = time_pyg(split, batches[: args.pyg_batches])
    figures = {
        "benchmark": "peers",
        "dataset": DATASET,
        "split_seed": SPLIT_SEED,
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "torch": torch.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "graph": {"nodes": split.n_users + split.n_items,
                  "train_pairs": len(lightgcn_edges(split, get_profile("paper").train))},
        "same_process": {
            "ours_seconds_per_batch": ours, "ours_batches": args.ours_batches,
            "pyg_seconds_per_batch": pyg, "pyg_batches": args.pyg_batches,
            "ours_over_pyg_speed": pyg / ours,
        },
        "peak_rss_mb": {job: in_child(job, n) for job, n in
                        (("ours", args.ours_batches), ("pyg", args.pyg_batches), ("pngnn-training", 0))},
    }
    print(json.dumps(figures, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
