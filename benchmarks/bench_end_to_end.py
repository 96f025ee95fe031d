"""Issue 30's end-to-end run at 1M, 5M and 20M ratings, every step the command a user types.

Per size, in a fresh folder (its own DuckDB file and MLflow store):

1. ``generate``: the synthetic graph of ``bench_scaling.py`` (ML-1M's user and item degree
   distributions and rating marginal, users and items in ML-1M's proportions per rating) written
   as a Parquet file ``ratings.parquet`` (user, item, rating): an export as a user would bring it.
2. ``ingest``: ``pngnn ingest --name synth-<size> --ratings ratings.parquet --columns ...``.
3. ``split``: ``pngnn split synth-<size> --seed 1`` (random 80/20).
4. ``ease`` and ``pn-ease``: ``pngnn train --method ... --track`` with ``ease_max_items`` where the
   catalogue is larger than the closed form's item budget (``--ease-max-items``,
   ``--pn-ease-max-items``): the model on the most-rated items, the rest scored by popularity.
5. ``lightgcn`` and ``pngnn``: ``pngnn train --profile paper --epochs N --set max_batches=M --track``:
   real epochs with the step cap, then the full-ranking evaluation.
6. ``score``: the registered PN-EASE model (``models:/pngnn-synth-<size>-pn-ease/1``) loaded as
   served (``mlflow.pyfunc``) and asked for 10 items for each of 1,000 users.

Each step runs under ``/usr/bin/time``: its wall seconds and the peak resident memory of its
process (getrusage's maxrss) go into ``benchmarks/results/end_to_end.json``, one entry per size
(``--append`` keeps the others), with the load average before each step (this machine is shared);
``end_to_end.png`` plots time and memory against ratings for every step.

    PNGNN_DATA_DIR=../shared/data python benchmarks/bench_end_to_end.py --sizes 1000000 --append
    python benchmarks/bench_end_to_end.py --sizes 20000000 --append --work /tmp/e2e
    python benchmarks/bench_end_to_end.py --sizes 20000000 --append --only ease,pn-ease,score   # refit two steps
    python benchmarks/bench_end_to_end.py --plot-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent
CLOSED_FORMS = ("ease", "pn-ease")
GRAPH_MODELS = ("lightgcn", "pngnn")
SCORED_USERS = 1000


def dataset_name(size: int) -> str:
    return f"synth-{size // 1_000_000}m" if size % 1_000_000 == 0 else f"synth-{size}"


def generate(size: int, out: Path, data_dir: Path, seed: int) -> None:
    """The Parquet export (step 1), in its own process so its memory peak is its own."""
    import numpy as np
    import polars as pl

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_scaling import synthetic_ratings

    g = synthetic_ratings(size, data_dir, seed=seed)
    frame = pl.DataFrame({"user": g["users"].astype(np.int64), "item": g["items"].astype(np.int64),
                          "rating": g["ratings"].astype(np.float32)})
    frame.write_parquet(out)


def score(dataset: str, parquet: Path, n_users: int, seed: int) -> None:
    """Step 6: the registered PN-EASE model as ``mlflow models serve`` loads it, a batch of users."""
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    import polars as pl

    users = pl.read_parquet(parquet, columns=["user"])["user"].unique().sort().to_numpy()
    chosen = np.random.default_rng(seed).choice(users, min(n_users, len(users)), replace=False)
    name = f"pngnn-{dataset}-pn-ease"
    newest = max(int(v.version) for v in mlflow.MlflowClient().search_model_versions(f"name='{name}'"))
    model = mlflow.pyfunc.load_model(f"models:/{name}/{newest}")  # the newest: --only may have refitted it
    t0 = time.perf_counter()
    # ingest keeps a file's ids as the user gave them, as text: the served model speaks those
    answer = model.predict(pd.DataFrame({"user_id": chosen.astype(str)}), params={"k": 10})
    seconds = time.perf_counter() - t0
    if len(answer) != len(chosen) * 10:
        raise SystemExit(f"the served model answered {len(answer)} rows for {len(chosen)} users x 10")
    print(json.dumps({"users": len(chosen), "rows": len(answer), "predict_s": round(seconds, 3)}))


def timed(name: str, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run one step under /usr/bin/time; its wall time, peak RSS and last output lines."""
    stats = cwd / f".{name}.time"
    load = os.getloadavg()
    print(f"{time.strftime('%H:%M:%S')} {name}: {' '.join(cmd)}", flush=True)
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", str(stats), *cmd], cwd=cwd, env=env,
                              stdout=out, stderr=subprocess.STDOUT)
    wall, max_kb = stats.read_text().split()[-2:]
    tail = log.read_text().splitlines()[-3:]
    row = {"step": name, "wall_s": float(wall), "peak_rss_mb": round(int(max_kb) / 1024, 1), "rc": proc.returncode,
           "load_before": [round(x, 2) for x in load], "last_lines": tail, "command": " ".join(cmd)}
    print(f"    {row['wall_s']} s, {row['peak_rss_mb']} MB, rc {proc.returncode}", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"step {name} failed (rc {proc.returncode}); see {log}")
    return row


def run_size(size: int, args: argparse.Namespace, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every step of one size in a fresh folder; with ``--only``, those steps again in the folder the
    last run left (its data ingested and split), the other steps' records kept from ``before``."""
    work = args.work / dataset_name(size)
    only = set(args.only.split(",")) if args.only else None
    if only is None and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    dataset, parquet, log = dataset_name(size), work / "ratings.parquet", work / "steps.log"
    env = {**os.environ, "PNGNN_DB": str(work / "pngnn-data" / "pngnn.duckdb"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'pngnn-data' / 'mlflow.db'}",
           "PNGNN_PROFILES_DIR": str(ROOT / "profiles"), "PNGNN_TORCH_THREADS": str(args.threads),
           "PYTHONPATH": str(ROOT), "DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}
    pngnn, me = str(BIN / "pngnn"), [sys.executable, str(Path(__file__).resolve())]
    kept = {r["step"]: r for r in (before or {}).get("steps", [])}
    steps: list[dict[str, Any]] = []

    def step(name: str, cmd: list[str]) -> None:
        if only is None or name in only:
            steps.append(timed(name, cmd, work, env, log))
        elif name in kept:
            steps.append(kept[name])
        elif (work / f".{name}.time").is_file():  # a run that stopped before its record: its step's timing
            wall, max_kb = (work / f".{name}.time").read_text().split()[-2:]
            steps.append({"step": name, "wall_s": float(wall), "peak_rss_mb": round(int(max_kb) / 1024, 1),
                          "rc": 0, "command": " ".join(cmd), "from": "the folder's timing file"})

    step("generate", [*me, "--generate", str(size), "--to", str(parquet)])
    step("ingest", [pngnn, "ingest", "--name", dataset, "--ratings", str(parquet),
                    "--columns", "user=user,item=item,rating=rating"])
    step("split", [pngnn, "split", dataset, "--seed", "1"])
    import polars as pl

    n_items = pl.scan_parquet(parquet).select(pl.col("item").n_unique()).collect().item()
    budgets = {"ease": args.ease_max_items, "pn-ease": args.pn_ease_max_items}
    for method in CLOSED_FORMS:
        cmd = [pngnn, "train", "--dataset", dataset, "--method", method, "--seed", "1", "--track"]
        if n_items > budgets[method]:
            cmd += ["--set", f"ease_max_items={budgets[method]}"]
        step(method, [*cmd, "--force"] if only else cmd)
    for method in GRAPH_MODELS:
        cmd = [pngnn, "train", "--dataset", dataset, "--method", method, "--seed", "1", "--profile", "paper",
               "--epochs", str(args.epochs), "--set", f"max_batches={args.max_batches}", "--track"]
        step(method, [*cmd, "--force"] if only else cmd)
    step("score", [*me, "--score", dataset, "--to", str(parquet)])
    for row in steps:
        if row["step"] in (*CLOSED_FORMS, *GRAPH_MODELS) and (only is None or row["step"] in only):
            row["record"] = result_record(work, dataset, row["step"])
    total = round(sum(r["wall_s"] for r in steps), 1)
    return {"n_ratings": size, "dataset": dataset, "n_items": n_items, "steps": steps, "total_wall_s": total,
            "max_peak_rss_mb": max(r["peak_rss_mb"] for r in steps), "settings": {
                "epochs": args.epochs, "max_batches": args.max_batches, "threads": args.threads,
                "ease_max_items": args.ease_max_items, "pn_ease_max_items": args.pn_ease_max_items},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def result_record(work: Path, dataset: str, method: str) -> dict[str, Any]:
    """What the results JSON of a training says: its fit and evaluation times, epochs, metrics."""
    found = sorted((work / "results" / dataset).glob(f"{method}/seed1.json"))
    if not found:
        return {}
    record = json.loads(found[0].read_text())
    keep = ("train_seconds", "eval_seconds", "epochs_run", "epoch_seconds")
    out = {k: record[k] for k in keep if k in record}
    out["metrics"] = {k: round(v, 4) for k, v in record["metrics"].items() if k in ("precision@5", "recall@20")}
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(results["runs"], key=lambda r: r["n_ratings"])
    names = [s["step"] for s in runs[-1]["steps"]]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in names:
        xs = [r["n_ratings"] / 1e6 for r in runs for s in r["steps"] if s["step"] == name]
        ax_t.plot(xs, [s["wall_s"] / 60 for r in runs for s in r["steps"] if s["step"] == name], "o-", label=name)
        ax_m.plot(xs, [s["peak_rss_mb"] / 1024 for r in runs for s in r["steps"] if s["step"] == name], "o-",
                  label=name)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for ax, label in ((ax_t, "wall time (min)"), (ax_m, "peak RSS (GB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks([r["n_ratings"] / 1e6 for r in runs])
        ax.set_xlabel("ratings (millions)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_m.axhline(12, color="grey", ls="--", lw=1)
    ax_t.legend(fontsize=8)
    fig.suptitle("End to end on synthetic ML-1M-shaped data, 2 CPU cores (benchmarks/bench_end_to_end.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000,20000000", help="ratings per run, comma-separated")
    parser.add_argument("--epochs", type=int, default=1, help="graph models: real epochs")
    parser.add_argument("--max-batches", type=int, default=32, help="graph models: the step cap")
    parser.add_argument("--ease-max-items", type=int, default=20000, help="EASE's item budget")
    parser.add_argument("--pn-ease-max-items", type=int, default=10000, help="PN-EASE's item budget (2x columns)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (PNGNN_TORCH_THREADS)")
    parser.add_argument("--work", type=Path, default=Path("e2e-work"), help="scratch folder, one per size")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("PNGNN_DATA_DIR", "../shared/data")))
    parser.add_argument("--out", type=Path, default=RESULTS / "end_to_end.json")
    parser.add_argument("--append", action="store_true", help="keep the other sizes' entries in --out")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--only", help="steps to run again (comma-separated, e.g. ease,pn-ease,score) in the "
                                       "folder a run left; the other steps' records are kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--score", help=argparse.SUPPRESS)
    parser.add_argument("--to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        return generate(args.generate, args.to, args.data_dir.resolve(), args.seed)
    if args.score:
        return score(args.score, args.to, SCORED_USERS, args.seed)
    if not args.plot_only:
        args.work = args.work.resolve()
        sizes = [int(s) for s in args.sizes.split(",")]
        results: dict[str, Any] = {"benchmark": "end_to_end", "runs": []}
        if args.append and args.out.exists():
            results = json.loads(args.out.read_text())
        results["machine"] = {"cpu_count": os.cpu_count(), "processor": platform.machine(),
                              "python": platform.python_version()}
        for size in sizes:
            os.environ["PNGNN_DATA_DIR"] = str(args.data_dir.resolve())
            before = next((r for r in results["runs"] if r["n_ratings"] == size), None)
            run = run_size(size, args, before)
            results["runs"] = [r for r in results["runs"] if r["n_ratings"] != size] + [run]
            results["runs"].sort(key=lambda r: r["n_ratings"])
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")
            print(f"{dataset_name(size)}: {run['total_wall_s']} s in all, peak {run['max_peak_rss_mb']} MB", flush=True)
    plot(json.loads(args.out.read_text()), args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
