"""How training cost grows with the data: LightGCN and PN-GNN on synthetic rating graphs of 1M, 5M
and 20M ratings that have ML-1M's degree distributions.

The graphs: users and items scale with the ratings in ML-1M's proportions (6,040 users and 3,706
items per million ratings); each user's degree is drawn from ML-1M's empirical user degrees,
each item's weight from ML-1M's empirical item degrees, and every rating joins a user (by
degree) to an item drawn in proportion to its weight (Chung-Lu); duplicate pairs are dropped
and redrawn, then the ratings are cut to the exact size. Rating values are drawn from ML-1M's
marginal, so PN-GNN's positive/negative split keeps ML-1M's proportions. All ratings are train
ratings (no evaluation here: the cost measured is training's).

Per size and model, in a fresh subprocess (so peaks of one size never show in another's):

* ``timed``: the paper profile's settings (dim 64, 4 layers, batch 4096, 40 negatives,
  user-balanced pair order, PN-GNN ``weighted``), 2 warm-up batches then ``--batches`` batches
  timed, their negatives drawn as ``fit`` draws them (timed apart); the epoch estimate is
  (train + sampling seconds per batch) x batches per epoch. A full epoch is one propagation of
  the whole graph per batch, so at 20M ratings it is beyond this benchmark's time budget.
* ``epoch``: where the estimate is under ``--full-epoch-max-s``, one real epoch through
  ``pngnn.training.train.fit`` (the whole epoch's negatives drawn at once, as training does), its
  seconds as ``fit`` logs them; it checks the estimate.
* peak RSS: ``getrusage`` maxrss of the process, and a 20 ms sampling thread's maximum of
  ``/proc/self/statm`` per phase (generation, model build, timed batches, full epoch); on CUDA
  also ``torch.cuda.max_memory_allocated``.

    PNGNN_DATA_DIR=../shared/data python benchmarks/bench_scaling.py            # CPU, writes results
    python benchmarks/bench_scaling.py --device cuda                             # adds a CUDA entry
    python benchmarks/bench_scaling.py --sizes 20000 --batches 2 --out /tmp/s.json   # a smoke run
    python benchmarks/bench_scaling.py --plot-only                               # redraw the PNG
    python benchmarks/bench_scaling.py --sizes 20000000 --batches 5 --append     # one size more, others kept

The committed figures: ``--threads 1`` (two torch threads on a shared 2-core machine wait on each
other), 1M and 5M with the default 20 timed batches, then 20M alone with ``--batches 5 --append``
to stay in the time budget (each 20M batch takes seconds); every run records the load average
before it.

Results: ``benchmarks/results/scaling.json`` (one entry per device) and ``scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ML1M_USERS_PER_RATING = 6040 / 1_000_209
ML1M_ITEMS_PER_RATING = 3706 / 1_000_209
MODELS = ("lightgcn", "pngnn")


# --- the synthetic graphs ------------------------------------------------------------------


def ml1m_marginals(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ML-1M's user degrees, item degrees, and rating values with their frequencies."""
    from pngnn.data import datasets

    ratings = datasets.load("ml-1m", data_dir, allow_download=False).ratings
    user_deg = np.bincount(ratings["user_id"].to_numpy())
    item_deg = np.bincount(ratings["item_id"].to_numpy())
    values, counts = np.unique(ratings["rating"].to_numpy(), return_counts=True)
    return user_deg[user_deg > 0], item_deg[item_deg > 0], values, counts / counts.sum()


def synthetic_ratings(n_ratings: int, data_dir: Path, seed: int = 0, rounds: int = 40) -> dict[str, Any]:
    """Users, items and ratings of a graph with ML-1M's degree distributions (module docstring).

    Each user's target degree is drawn from ML-1M's user degrees and the targets scaled to sum to
    ``n_ratings``; every round draws each user's shortfall of items (by item weight) and drops
    the pairs already there, so heavy users keep their degree despite duplicate draws."""
    user_deg, item_deg, values, probs = ml1m_marginals(data_dir)
    rng = np.random.default_rng(seed)
    n_users = max(1, round(n_ratings * ML1M_USERS_PER_RATING))
    n_items = max(1, round(n_ratings * ML1M_ITEMS_PER_RATING))
    raw = rng.choice(user_deg, n_users).astype(np.float64)
    target = np.minimum(np.floor(raw * n_ratings / raw.sum()).astype(np.int64), n_items)
    extra = n_ratings - int(target.sum())
    if extra > 0:  # the rounding remainder, one rating each to random users below the cap
        room = np.flatnonzero(target < n_items)
        target[rng.choice(room, min(extra, len(room)), replace=False)] += 1
    item_cdf = np.cumsum(rng.choice(item_deg, n_items).astype(np.float64))
    item_cdf /= item_cdf[-1]
    keys = np.zeros(0, dtype=np.int64)
    have = np.zeros(n_users, dtype=np.int64)
    for _ in range(rounds):
        short = target - have
        if short.sum() <= n_ratings // 100_000:  # the last few heavy users' stragglers: not worth rounds
            break
        users = np.repeat(np.arange(n_users, dtype=np.int64), short)
        items = np.minimum(np.searchsorted(item_cdf, rng.random(len(users)), side="right"), n_items - 1)
        keys = np.unique(np.concatenate([keys, users * n_items + items]))
        have = np.bincount(keys // n_items, minlength=n_users)
    users, items = keys // n_items, keys % n_items
    ratings = rng.choice(values, len(keys), p=probs).astype(np.float32)
    return {"users": users, "items": items, "ratings": ratings, "n_users": n_users, "n_items": n_items,
            "shortfall": int((target - have).sum()), "ml1m_user_deg": user_deg, "ml1m_item_deg": item_deg}


def degree_summary(deg: np.ndarray) -> dict[str, float]:
    deg = deg[deg > 0]
    q = np.quantile(deg, [0.5, 0.9, 0.99])
    return {"n": len(deg), "mean": round(float(deg.mean()), 1), "median": float(q[0]), "p90": float(q[1]),
            "p99": float(q[2]), "max": int(deg.max())}


# --- peak memory -----------------------------------------------------------------------------


class RssSampler:
    """The resident set size every ``interval`` seconds, its maximum per named phase."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.page = interval, os.sysconf("SC_PAGE_SIZE")
        self.phase: str = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.note()
            time.sleep(self.interval)

    def note(self) -> None:
        rss = self.rss()
        if rss > self.peaks.get(self.phase, 0):
            self.peaks[self.phase] = rss

    @contextmanager
    def during(self, phase: str) -> Iterator[None]:
        self.note()
        self.phase = phase
        self.note()
        try:
            yield
        finally:
            self.note()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {k: round(v / 2**20, 1) for k, v in self.peaks.items()}


# --- one (size, model) in this process ----------------------------------------------------


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    from pngnn.core.profiles import get_profile
    from pngnn.data.split import Interactions, SplitData
    from pngnn.models.sampling import EpochPairOrder, NegativeSampler
    from pngnn.training.device import resolve_device, use_device
    from pngnn.training.schedule import batch_schedule
    from pngnn.training.train import (
        PairPlan,
        build_lightgcn,
        build_pngnn,
        fit,
        lightgcn_edges,
        pngnn_pair_plan,
        train_epoch,
    )

    device = resolve_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rss = RssSampler()
    out: dict[str, Any] = {"n_ratings": args.size, "model": args.model}
    with rss.during("generate"):
        t0 = time.perf_counter()
        g = synthetic_ratings(args.size, Path(args.data_dir), seed=args.seed)
        out["generate_s"] = round(time.perf_counter() - t0, 2)
    train = Interactions(g["users"], g["items"], g["ratings"])
    out.update(n_users=g["n_users"], n_items=g["n_items"], n_ratings_drawn=len(train), shortfall=g["shortfall"],
               user_degrees=degree_summary(np.bincount(g["users"], minlength=g["n_users"])),
               item_degrees=degree_summary(np.bincount(g["items"], minlength=g["n_items"])),
               ml1m_user_degrees=degree_summary(g["ml1m_user_deg"]),
               ml1m_item_degrees=degree_summary(g["ml1m_item_deg"]))
    del g
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    split = SplitData("synthetic", args.seed, out["n_users"], out["n_items"], train, empty, empty)
    cfg = get_profile("paper").train.with_overrides(epochs=1, max_batches=args.max_batches)
    out["settings"] = {k: getattr(cfg, k) for k in ("dim", "layers", "batch_size", "max_batches", "n_neg",
                                                     "pair_sampling", "lightgcn_graph", "dual_bpr", "b", "threshold")}

    def build() -> tuple[torch.nn.Module, PairPlan]:
        if args.model == "lightgcn":
            return build_lightgcn(split, cfg), PairPlan(lightgcn_edges(split, cfg))
        return build_pngnn(split, cfg), pngnn_pair_plan(split.train, split.n_users, cfg)

    with rss.during("build"):
        t0 = time.perf_counter()
        model, plan = build()
        model = model.to(device)
        out["build_s"] = round(time.perf_counter() - t0, 2)
    pairs = plan.pairs
    schedule = batch_schedule(cfg, len(pairs))  # --max-batches 0: the paper's fixed batch at any size
    batch = schedule.batch_size
    n_batches = -(-len(pairs) // batch)
    out.update(n_pairs=len(pairs), batches_per_epoch=n_batches, batch_size=batch, lr=schedule.lr,
               adjacency_nnz=int(sum(b._nnz() for _, b in model.named_buffers() if b.layout != torch.strided)),
               epoch_negatives_mb=round(len(pairs) * cfg.n_neg * 4 / 2**20, 1))

    with rss.during("timed_batches"):
        rng = np.random.default_rng(cfg.seed)
        sampler = NegativeSampler(train.users, train.items, split.n_users, split.n_items, cfg.neg_exponent,
                                  seed=cfg.seed)
        order = EpochPairOrder(pairs.users, split.n_users, cfg.pair_sampling).draw(rng)
        warm, timed = 2, min(args.batches, max(1, n_batches - 2))
        rows = order[: (warm + timed) * batch]
        t0 = time.perf_counter()
        negatives = sampler.sample(pairs.users[rows], cfg.n_neg)
        sample_s = time.perf_counter() - t0
        feats = {**(plan.pair_features or {}), **(plan.epoch_features() if plan.epoch_features else {})}
        feats_t = {k: torch.from_numpy(v).to(device) for k, v in feats.items()}
        users_t, items_t = torch.from_numpy(pairs.users).to(device), torch.from_numpy(pairs.items).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=schedule.lr)
        w = warm * batch
        train_epoch(model, opt, users_t, items_t, rows[:w], negatives[:w], feats_t, batch, "warm-up", False)
        sync()
        t0 = time.perf_counter()
        train_epoch(model, opt, users_t, items_t, rows[w:], negatives[w:], feats_t, batch, "timed", False)
        sync()
        train_s = time.perf_counter() - t0
    n_timed = -(-len(rows[w:]) // batch)
    per_batch = train_s / n_timed
    sample_per_batch = sample_s / (warm + n_timed)
    out.update(batches_timed=n_timed, train_s_per_batch=round(per_batch, 4),
               sample_s_per_batch=round(sample_per_batch, 4),
               epoch_s_estimate=round(n_batches * (per_batch + sample_per_batch), 1))
    del opt, negatives, feats_t, users_t, items_t
    if out["epoch_s_estimate"] <= args.full_epoch_max_s:
        model, plan = build()
        with rss.during("full_epoch"), use_device(device):
            logs: list[float] = []
            fit(model, plan.pairs, train, split.n_users, split.n_items, cfg, pair_features=plan.pair_features,
                epoch_features=plan.epoch_features, on_epoch=lambda e: logs.append(e.seconds), progress=False)
        out["epoch_s_measured"] = round(logs[0], 1)
    out["peak_rss_mb_by_phase"] = rss.stop()
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if device.type == "cuda":
        out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


# --- the driver: one subprocess per (size, model), results, plot ------------------------------


def common_arguments(parser: argparse.ArgumentParser, out: Path) -> None:
    """The options every alternating benchmark takes (threads, seed, data, where its JSON goes)."""
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("PNGNN_DATA_DIR", "../shared/data"))
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)


def read_runs(path: Path, benchmark: str) -> dict[str, Any]:
    """The benchmark's JSON so far (its runs are replaced one by one), or an empty one."""
    return json.loads(path.read_text()) if path.is_file() else {"benchmark": benchmark, "runs": []}


def machine(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") and torch.cuda.is_available() else None
    return {"cpu_count": os.cpu_count(), "torch_threads": args.threads,
            "processor": platform.processor() or platform.machine(), "torch": torch.__version__, "gpu": gpu,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for device, entry in sorted(results.get("devices", {}).items()):
        for model in MODELS:
            runs = sorted((r for r in entry["runs"] if r["model"] == model), key=lambda r: r["n_ratings"])
            if not runs:
                continue
            x = [r["n_ratings"] / 1e6 for r in runs]
            style = "-o" if device == "cpu" else "--s"
            ax_t.plot(x, [r["epoch_s_estimate"] for r in runs], style, label=f"{model} ({device})")
            measured = [(xi, r["epoch_s_measured"]) for xi, r in zip(x, runs, strict=True) if "epoch_s_measured" in r]
            if measured:
                ax_t.plot(*zip(*measured, strict=True), "kx", ms=8)
            ax_m.plot(x, [r["peak_rss_mb"] / 1024 for r in runs], style, label=f"{model} ({device})")
    ax_t.set(xscale="log", yscale="log", xlabel="ratings (millions)", ylabel="seconds per epoch",
             title="epoch time (x: a measured full epoch)")
    ax_m.set(xscale="log", xlabel="ratings (millions)", ylabel="peak RSS (GiB)", title="peak RSS of the process")
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("Synthetic graphs with ML-1M's degree distributions, paper settings")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000,20000000", help="ratings per graph, comma-separated")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", type=int, default=20, help="timed batches per (size, model)")
    parser.add_argument("--full-epoch-max-s", type=float, default=240.0,
                        help="also train one real epoch where the estimate is at most this")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-batches", type=int, default=0,
                        help="steps an epoch at most (the batch grows above it: pngnn.training.schedule); 0: the "
                             "paper's fixed batch, as scaling.json was measured; 256: the default of training")
    parser.add_argument("--data-dir", default=os.environ.get("PNGNN_DATA_DIR", "../shared/data"),
                        help="the folder holding ml-1m/ (its degrees are sampled)")
    parser.add_argument("--out", type=Path, default=RESULTS / "scaling.json")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--append", action="store_true",
                        help="keep this device's other runs, replace only the (size, model) runs made now")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args)))
        return
    results = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "scaling"}
    png = args.out.with_suffix(".png")
    if args.plot_only:
        plot(results, png)
        return
    from pngnn.training.device import resolve_device

    device = str(resolve_device(args.device))
    key = "cpu" if device == "cpu" else "cuda"
    entry = {"device": device, "machine": machine(args), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
             "runs": []}
    old = results.setdefault("devices", {}).get(key)
    if args.append and old:
        entry = old
        entry.setdefault("appended", []).append({"created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                 "argv": sys.argv[1:], "machine": machine(args)})
    results["devices"][key] = entry
    for size in [int(s) for s in args.sizes.split(",")]:
        for model in args.models.split(","):
            cmd = [sys.executable, __file__, "--child", "--size", str(size), "--model", model, "--batches",
                   str(args.batches), "--full-epoch-max-s", str(args.full_epoch_max_s), "--device", args.device,
                   "--threads", str(args.threads), "--seed", str(args.seed), "--data-dir", args.data_dir,
                   "--max-batches", str(args.max_batches)]
            t0, load = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{model} at {size} ratings failed:\n{proc.stderr[-3000:]}")
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            run.update(wall_s=round(time.perf_counter() - t0, 1), load_average_before=load,
                       created=time.strftime("%Y-%m-%dT%H:%M:%S"))
            entry["runs"] = [r for r in entry["runs"] if (r["n_ratings"], r["model"]) != (size, model)] + [run]
            print(f"{model:8s} {size:>10,d} ratings: epoch ~{run['epoch_s_estimate']} s"
                  f"{' (measured ' + str(run['epoch_s_measured']) + ' s)' if 'epoch_s_measured' in run else ''}, "
                  f"peak RSS {run['peak_rss_mb']} MB, wall {run['wall_s']} s", flush=True)
            entry["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")  # after each run: partial results survive
    plot(results, png)
    print(f"-> {args.out}, {png}")


if __name__ == "__main__":
    main()
