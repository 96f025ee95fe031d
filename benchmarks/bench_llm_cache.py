"""A cached rerun of the augmentation over every ML-1M user: how long, how many requests.

First pass: all 6,040 users of ML-1M split 1 (candidates from the most-popular model, so
no training is timed) against FaultLLMServer (tests/fault_llm_server.py, a threaded test
double of an OpenAI-compatible server that answers at once), filling the DuckDB
``llm_cache``. Second pass: the same call again; it must send zero requests. Writes the
seconds of both passes and the server's request counts as JSON.

    PNGNN_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_llm_cache.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fault_llm_server import FaultLLMServer, Script

from pngnn.augment.client import LLMClient
from pngnn.augment.pipeline import augment
from pngnn.core.config import TrainConfig
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data import datasets
from pngnn.data.ingest import ingest
from pngnn.data.split import create_split, load_split
from pngnn.data.store import Store
from pngnn.training.train import build_most_popular


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/llm_cache_rerun.json"))
    args = parser.parse_args()
    raw = datasets.load(args.dataset, Settings.from_env().data_dir)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.duckdb") as store, \
            FaultLLMServer(Script(latency=0.0)) as server:
        ingest(store, raw)
        create_split(store, args.dataset, args.seed)
        split = load_split(store, args.dataset, args.seed)
        model = build_most_popular(split, TrainConfig())
        settings = LLMSettings(base_url=server.base_url, model="fault-model", schema_mode="json_object",
                               concurrency=8)
        passes = []
        for name, candidate_model in (("first", model), ("cached rerun", None)):
            before = len(server.requests)
            client = LLMClient(settings)
            t0 = time.perf_counter()
            summary = augment(store, args.dataset, args.seed, candidate_model, settings, split=split,
                              client=client, progress=False)
            seconds = time.perf_counter() - t0
            client.close()
            passes.append({"pass": name, "seconds": round(seconds, 2), "users": summary.users,
                           "prompts": summary.prompts, "cached": summary.cached, "sent": summary.sent,
                           "server_requests": len(server.requests) - before})
            print(passes[-1], flush=True)
    figures = {"benchmark": "llm_cache_rerun", "dataset": args.dataset, "split_seed": args.seed,
               "server": "FaultLLMServer (test double), immediate answers", "passes": passes,
               "target": "cached rerun: 0 requests, under 10 s", "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
