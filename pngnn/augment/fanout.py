"""The LLM augmentation of one split with its requests asked elsewhere, a chunk at a time.

Why: one process with a thread pool is bounded by one machine's sockets and one API key's
patience; a Dask cluster (``tasks/llm_fanout.py``) spreads the prompts over worker processes or
machines. What must not change is what ``augment`` guarantees: every prompt claimed before it is
sent, every answer written to ``llm_cache`` as it comes back, one writer of the DuckDB file.
So the split is still augmented by ``augment`` in the flow's process, with a client that looks
like ``LLMClient`` (``ChunkedClient``) but hands the claimed requests, in chunks, to a
``dispatch`` function (the Prefect mapped task) and writes each chunk's outcomes as it returns.
A worker only talks to the LLM (``ask_chunk``): it gets the chunk's prompts as its input and
returns their outcomes; it never opens the database. A crash loses the chunks in flight, which
a rerun asks again (their claims lapse with the process).

No Prefect here: ``dispatch`` and the ``throttle`` are injected by ``tasks/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

from pngnn.augment.cache import CacheEntry
from pngnn.augment.client import BatchCounts, Elsewhere, Feed, LLMClient, Request, ResponseForm
from pngnn.augment.pipeline import augment, check_failures
from pngnn.augment.throttle import Throttle, no_throttle
from pngnn.augment.wording import check_prompt_version
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data.split import SplitData
from pngnn.data.store import Store


@dataclass(frozen=True)
class ChunkResult:
    """A chunk's outcomes, one cache row per request, and the response_format form its client
    settled on."""

    entries: list[CacheEntry]
    schema_mode: ResponseForm


# Chunks of claimed requests -> their results, in any order, as each is done.
Dispatch = Callable[[list[list[Request]]], Iterable[ChunkResult]]


def ask_chunk(requests: list[Request], settings: LLMSettings, throttle: Throttle = no_throttle) -> ChunkResult:
    """What a worker does with one chunk: ask every request with its own client (a pool of
    ``settings.concurrency`` threads, ``throttle`` before each request) and return the outcomes.
    Stateless: no database, nothing kept; a server that stopped answering raises
    (``LLMClient.run_batch``) and the chunk is asked again by the next run."""
    client = LLMClient(settings, throttle=throttle)
    entries: list[CacheEntry] = []
    try:
        client.run_batch(requests, entries.append, progress=False)
    finally:
        client.close()
    return ChunkResult(entries, client.schema_mode)


class ChunkedClient:
    """Looks like an ``LLMClient`` to ``augment``: reads the claimed feed in chunks of
    ``chunk_size`` and sends each round of chunks through ``dispatch``; the outcomes reach
    ``on_result`` in this (the flow's) thread, which writes them to the cache.

    ``settings``: the workers' LLM settings. ``augment`` claims ``2 x settings.concurrency``
    prompts per claim transaction; here that is two chunks (what the fan-out has in flight is
    chunks, not one pool's threads)."""

    poll_s: float = 0.5  # pause while another run holds the prompts left

    def __init__(self, settings: LLMSettings, dispatch: Dispatch, chunk_size: int) -> None:
        if chunk_size < 1:
            raise PngnnError(f"chunk size {chunk_size} < 1", "set PNGNN_LLM_CHUNK_SIZE to 1 or more")
        self.worker_settings = settings
        self.settings = settings.with_overrides(concurrency=max(settings.concurrency, chunk_size))
        self._dispatch = dispatch
        self.chunk_size = chunk_size
        self._mode: ResponseForm = "json_schema" if settings.schema_mode == "auto" else settings.schema_mode
        self.chunks_sent = 0

    @property
    def schema_mode(self) -> ResponseForm:
        return self._mode

    def check(self) -> None:
        """Server reachable, key accepted, model served: from here, before any chunk is sent."""
        client = LLMClient(self.worker_settings)
        try:
            client.check()
        finally:
            client.close()

    def close(self) -> None:
        """Nothing to close: every chunk's client is closed by its worker."""

    def run_batch(self, requests: Feed, on_result: Callable[[CacheEntry], None], cached: int = 0,
                  progress: bool = True, total: int | None = None) -> BatchCounts:
        """Every request of the feed asked through ``dispatch``; ``on_result`` gets each outcome as
        its chunk returns. ``progress`` is ignored (the flow's task runs show the chunks)."""
        del progress
        size = len(requests) if isinstance(requests, Sized) else (total or 0)
        counts = BatchCounts(total=size + cached, cached=cached)
        start = time.perf_counter()
        queue = iter(requests)
        while True:
            chunks, ended = self._round(queue, counts)
            if chunks:
                self.chunks_sent += len(chunks)
                for result in self._dispatch(chunks):
                    self._mode = result.schema_mode
                    for entry in result.entries:
                        on_result(entry)
                        counts.add(entry.status)
            if ended:
                break
            if not chunks:
                time.sleep(self.poll_s)
        counts.seconds = time.perf_counter() - start
        return counts

    def _round(self, queue: Iterator[Request | Elsewhere], counts: BatchCounts) -> tuple[list[list[Request]], bool]:
        """The chunks the feed gives until it ends (True) or says the rest is held elsewhere
        (False: send these, then ask again)."""
        chunks: list[list[Request]] = []
        current: list[Request] = []
        for item in queue:
            if isinstance(item, Request):
                current.append(item)
                if len(current) == self.chunk_size:
                    chunks.append(current)
                    current = []
                continue
            counts.shared += item.answered
            if item.wait:
                return [*chunks, current] if current else chunks, False
        return [*chunks, current] if current else chunks, True


def augment_chunked(settings: Settings, dataset: str, seed: int, llm: LLMSettings, client: ChunkedClient,
                    sample_seed: int = 0, split: SplitData | None = None) -> dict[str, Any]:
    """``augment`` of split ``seed`` through ``client`` on the candidates stored by the pretrain
    step (the same users ``augment_step`` selects), then ``check_failures``; the counts, as
    ``augment_step(merge=False)`` returns them. The DuckDB file is written here only. ``split``:
    the split when the caller has loaded it; default: read here."""
    with Store(settings.db_path) as store:
        check_prompt_version(store, dataset, llm)
        summary = augment(store, dataset, seed, None, llm, sample=llm.users, sample_seed=sample_seed,
                          users_by=llm.users_by, client=client, progress=False, split=split)  # type: ignore[arg-type]
    check_failures(summary, llm.max_failed_share)
    return summary.to_dict()
