"""The LLM fan-out on a real local Dask cluster against the fault-injection server (a TEST DOUBLE
of an LLM: ``fault_llm_server.py``), shared by ``tests/test_dask.py`` and
``benchmarks/bench_dask_augment.py``.

``prepare_db`` makes a DuckDB file with ML-100K, split 1 and the candidates of the sparsest
``users`` (a 2-epoch candidate LightGCN: the candidates only have to exist); ``run_fanout``
augments a copy of it through ``tasks.llm_fanout.fanout_augment`` in a Prefect flow on a
``PngnnDaskTaskRunner`` with ``workers`` local worker processes, then merges the edges, and
returns what the cache, the edges and the server saw.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fault_llm_server import FaultLLMServer, Script

from pngnn.augment.step import merge_step, pretrain_step
from pngnn.core.profiles import get_profile
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data import datasets
from pngnn.data.ingest import ingest
from pngnn.data.split import create_split
from pngnn.data.store import Store

DATASET, SEED, MODEL = "ml-100k", 1, "fault-model"
WORKER_TTL = "60s"
CACHE_COLUMNS = "key, model, prompt_version, status, raw_answer, like_idx, dislike_idx, failure"


def prompt_of(body: dict[str, Any]) -> str:
    """A chat request's prompt, as one string."""
    return json.dumps(body.get("messages", []), sort_keys=True)


def responder(body: dict[str, Any]) -> str:
    """A deterministic "model": like and dislike picked from a hash of the prompt, so every user
    gets their own edges and two runs over the same prompts get the same answers."""
    text = prompt_of(body)
    digest = hashlib.sha256(text.encode()).digest()
    like = digest[0] % 10 + 1
    dislike = (like + digest[1] % 9) % 10 + 1
    return json.dumps({"like": like, "dislike": dislike})


def fault_server(latency: float) -> FaultLLMServer:
    return FaultLLMServer(Script(latency=latency, responder=responder, models=(MODEL,)))


def prepare_db(path: Path, data_dir: Path, users: int) -> Path:
    """ML-100K, split ``SEED`` and the sparsest ``users``' candidates in a DuckDB file at ``path``."""
    with Store(path) as store:
        ingest(store, datasets.load(DATASET, data_dir, allow_download=False))
        create_split(store, DATASET, SEED)
    config = get_profile("quick").train.with_overrides(epochs=2, seed=SEED)
    pretrain_step(Settings(db_path=path), DATASET, SEED, users, candidate_config=config, progress=False)
    return path


def llm_settings(base_url: str, users: int, concurrency: int) -> LLMSettings:
    # Short timeouts: a worker must never hang on a server that stopped answering.
    return LLMSettings(base_url=base_url, model=MODEL, schema_mode="json_object", users=users,
                       users_by="sparsest", concurrency=concurrency, timeout=20, max_attempts=3,
                       backoff_initial_s=0.1, backoff_max_s=1)


@dataclass
class FanoutRun:
    workers: int
    seconds: float  # the augmentation, the cluster already started
    counts: dict[str, Any]
    request_times: list[float]  # server-side arrival of each chat request (monotonic s)
    cache: list[tuple[Any, ...]]
    edges: list[tuple[Any, ...]]
    max_inflight: int
    prompts_asked: Counter[str]  # each distinct prompt -> how many times the server got it
    lost_workers: list[str]  # the scheduler's lines about a worker it removed (their chunks ran again)

    def max_in_window(self, width: float = 1.0) -> int:
        """Most requests that arrived within any half-open window [t, t + width)."""
        times = sorted(self.request_times)
        return max((bisect.bisect_left(times, t + width) - i for i, t in enumerate(times)), default=0)

    def summary(self) -> dict[str, Any]:
        return {"workers": self.workers, "seconds": round(self.seconds, 3), "requests": len(self.request_times),
                "chunks": self.counts.get("chunks"), "ok": self.counts.get("ok"),
                "max_requests_in_1s": self.max_in_window(), "server_max_inflight": self.max_inflight,
                "positive_edges": self.counts.get("positive_edges"),
                "negative_edges": self.counts.get("negative_edges")}


def read_cache_and_edges(db: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The cache rows and edges that must not depend on how the prompts were sent."""
    with Store(db, read_only=True) as store:
        cache = store.query_sql(f"SELECT {CACHE_COLUMNS} FROM llm_cache ORDER BY key").rows()
        edges = store.query_sql("SELECT dataset, seed, user_id, item_id, kind, model, prompt_version "
                                "FROM augmented_edges ORDER BY user_id, item_id").rows()
    return cache, edges


class SchedulerLines(logging.Handler):
    """Keeps the local scheduler's (this process's) lines about workers it lost: a worker that
    stopped heartbeating is restarted, a worker that died is removed, and their chunks run again
    elsewhere, which a test must tell apart from a prompt sent twice by mistake. Removals once the
    cluster is being closed ("Retire worker addresses", then "Remove worker" per worker) are not
    losses."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.closing = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.closing = self.closing or message.startswith(("Retire worker", "Closing scheduler"))
        if "failed to heartbeat" in message or (message.startswith("Remove worker") and not self.closing):
            self.lines.append(message)


@contextmanager
def scheduler_lines() -> Iterator[SchedulerLines]:
    logger = logging.getLogger("distributed.scheduler")
    handler, level = SchedulerLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level or logging.INFO, logging.INFO))
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def run_fanout(base_db: Path, work: Path, latency: float, workers: int, users: int, chunk_size: int,
               concurrency: int, rate: float | None = None) -> FanoutRun:
    """Augment a copy of ``base_db`` on a local Dask cluster of ``workers`` processes.

    The scheduler restarts a worker after ``WORKER_TTL`` without a heartbeat (distributed's
    default is 5 minutes): a worker process that stalls costs a minute, not ten."""
    import dask
    from prefect import flow, unmapped

    from tasks.llm_fanout import fanout_augment, llm_chunk_task
    from tasks.runners import task_runner

    work.mkdir(parents=True, exist_ok=True)
    db = work / "pngnn.duckdb"
    shutil.copyfile(base_db, db)
    settings = Settings(db_path=db, task_runner="dask", dask_workers=workers, llm_chunk_size=chunk_size,
                        llm_rate_limit=rate)
    with fault_server(latency) as server:
        llm = llm_settings(server.base_url, users, concurrency)

        @flow(name="dask-fanout", log_prints=True)
        def fanout_flow() -> tuple[float, dict[str, Any]]:
            # Start the cluster and import the project in every worker before timing: an empty
            # chunk per worker asks nothing.
            for future in llm_chunk_task.map([[] for _ in range(workers)], unmapped(llm)):
                future.result()
            start = time.perf_counter()
            counts = fanout_augment(settings, DATASET, SEED, llm)
            seconds = time.perf_counter() - start
            counts.update(merge_step(settings, DATASET, SEED, MODEL))
            return seconds, counts

        first = len(server.chat_requests())
        with dask.config.set({"distributed.scheduler.worker-ttl": WORKER_TTL}), scheduler_lines() as lost:
            seconds, counts = fanout_flow.with_options(task_runner=task_runner(settings))()
        requests = server.chat_requests()[first:]
        inflight = server.max_inflight
    cache, edges = read_cache_and_edges(db)
    asked = Counter(prompt_of(r.body) for r in requests)
    return FanoutRun(workers, seconds, counts, [r.start for r in requests], cache, edges, inflight, asked,
                     lost.lines)
