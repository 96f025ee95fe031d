"""Requests per second of the LLM batch client at concurrency 1 vs 8.

The server is FaultLLMServer (tests/fault_llm_server.py), a threaded test double of the
OpenAI chat API answering every request after a fixed latency (0.2 s by default), so
the figure measures the client (thread pool, SDK, parsing), not a model. With a server
that runs requests in parallel, concurrency 8 should give close to 8x the requests per
second of concurrency 1 (the issue asks for at least 5x). Writes
benchmarks/results/llm_client.json.

    .venv/bin/python benchmarks/bench_llm_client.py
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fault_llm_server import FaultLLMServer, Script

from pngnn.augment.cache import CacheEntry
from pngnn.augment.client import LLMClient, Request
from pngnn.augment.prompts import messages
from pngnn.core.settings import LLMSettings


def measure(concurrency: int, n_requests: int, latency: float) -> dict[str, float]:
    with FaultLLMServer(Script(latency=latency)) as server:
        settings = LLMSettings(base_url=server.base_url, model="fault-model", schema_mode="json_object",
                               concurrency=concurrency)
        client = LLMClient(settings)
        requests = [Request(f"bench{i}", messages(f"benchmark prompt {i}"), 10, "bench") for i in range(n_requests)]
        results: list[CacheEntry] = []
        start = time.perf_counter()
        counts = client.run_batch(requests, results.append, progress=False)
        seconds = time.perf_counter() - start
        client.close()
        if counts.ok != n_requests:
            raise SystemExit(f"benchmark run had failures: {counts}")
        return {
            "concurrency": concurrency,
            "requests": n_requests,
            "seconds": round(seconds, 3),
            "requests_per_s": round(n_requests / seconds, 2),
            "server_max_inflight": server.max_inflight,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="server latency per request, seconds")
    parser.add_argument("--requests", type=int, default=40, help="requests per measurement")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/llm_client.json"))
    args = parser.parse_args()

    runs = [measure(c, args.requests, args.latency) for c in (1, 8)]
    speedup = runs[1]["requests_per_s"] / runs[0]["requests_per_s"]
    report = {
        "benchmark": "llm_client",
        "server": f"FaultLLMServer (threaded test double), fixed latency {args.latency} s",
        "runs": runs,
        "speedup_8_vs_1": round(speedup, 2),
        "target_speedup": 5.0,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for run in runs:
        print(f"concurrency {run['concurrency']}: {run['requests_per_s']} req/s ({run['seconds']} s)")
    print(f"speed-up 8 vs 1: {speedup:.2f}x -> {args.out}")


if __name__ == "__main__":
    main()
