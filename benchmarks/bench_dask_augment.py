"""The LLM augmentation fanned out on a local Dask cluster: 1 worker process vs 2, and a global
rate limit measured at the server.

The same augmentation (ML-100K split 1, the sparsest ``--users`` users, one prompt each) runs
through ``tasks.llm_fanout.fanout_augment`` in a Prefect flow on a local Dask cluster, against
the fault-injection server (``tests/fault_llm_server.py``, a test double of an LLM answering
after a fixed latency, deterministically per prompt), on fresh copies of one DuckDB file:

1. 1 worker, no rate limit; 2. 2 workers, no rate limit: the speedup (the issue asks >= 1.8x);
3. 2 workers with ``--rate-concurrency`` requests in flight each (unthrottled, far more than
   ``--rate`` per second) and ``PNGNN_LLM_RATE_LIMIT=--rate``: the most requests the server saw
   arrive in any 1 s window must not exceed the rate.

The cache rows (key, status, answer, like/dislike) and the merged edges must be identical in all
three. Times are the augmentation's, the cluster already started (each run starts its own).
A real Prefect server is started for the runs. Writes benchmarks/results/dask_augment.json.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_dask_augment.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="users asked (one prompt each)")
    parser.add_argument("--latency", type=float, default=1.0, help="server latency per request, seconds")
    parser.add_argument("--chunk-size", type=int, default=25, help="prompts per mapped task (PNGNN_LLM_CHUNK_SIZE)")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight per worker")
    parser.add_argument("--rate", type=float, default=5.0, help="global rate limit of run 3, requests/s")
    parser.add_argument("--rate-concurrency", type=int, default=8, help="requests in flight per worker in run 3")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("PNGNN_DATA_DIR", ROOT.parent / "shared"
                                                                               / "data")))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/dask_augment.json")
    args = parser.parse_args()

    from dask_fanout import prepare_db, run_fanout
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from servers import prefect_server

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        base = prepare_db(root / "base.duckdb", args.data_dir, args.users)
        print(f"prepared {args.users} users' candidates in {time.perf_counter() - t0:.1f} s", flush=True)
        with prefect_server(root / "prefect") as api, temporary_settings({PREFECT_API_URL: api}):
            common = {"latency": args.latency, "users": args.users, "chunk_size": args.chunk_size,
                      "concurrency": args.concurrency}
            one = run_fanout(base, root / "w1", workers=1, **common)
            print("1 worker:", one.summary(), flush=True)
            two = run_fanout(base, root / "w2", workers=2, **common)
            print("2 workers:", two.summary(), flush=True)
            limited = run_fanout(base, root / "w2-rate", workers=2, rate=args.rate,
                                 **{**common, "concurrency": args.rate_concurrency})
            print(f"2 workers, {args.rate} requests/s:", limited.summary(), flush=True)

    identical = one.cache == two.cache == limited.cache and one.edges == two.edges == limited.edges
    result = {
        "benchmark": "LLM augmentation fanned out on a local Dask cluster (tasks/llm_fanout.py) against "
                     "FaultLLMServer at a fixed latency",
        "command": "PYTHONPATH=. .venv/bin/python benchmarks/bench_dask_augment.py " + " ".join(sys.argv[1:]),
        "dataset": "ml-100k split 1", "users": args.users, "prompts": len(one.cache),
        "latency_s": args.latency, "chunk_size": args.chunk_size, "concurrency_per_worker": args.concurrency,
        "runs": {"1_worker": one.summary(), "2_workers": two.summary(), "2_workers_rate_limited": limited.summary()},
        "speedup_2_vs_1": round(one.seconds / two.seconds, 3),
        "rate_limit_per_s": args.rate,
        "rate_run_concurrency_per_worker": args.rate_concurrency,
        "rate_run_unthrottled_bound_per_s": round(2 * args.rate_concurrency / args.latency, 1),
        "rate_run_achieved_per_s": round(len(limited.request_times) / limited.seconds, 2),
        "max_requests_in_any_1s_window": limited.max_in_window(),
        "rate_limit_held": limited.max_in_window() <= args.rate,
        "identical_cache_and_edges": identical,
        "cache_rows": len(one.cache), "edges": len(one.edges),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "note": "2 shared CPU cores (other jobs running); times exclude starting the cluster",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("speedup_2_vs_1", "max_requests_in_any_1s_window", "rate_limit_per_s",
                                             "identical_cache_and_edges")}))
    if not identical:
        raise SystemExit("cache contents or edges differ between the runs")


if __name__ == "__main__":
    main()
