"""The LLM augmentation as mapped tasks over chunks of prompts (``pngnn.augment.fanout``).

``fanout_augment`` runs in the flow's process: it claims the split's prompts, maps
``llm_chunk_task`` over chunks of ``PNGNN_LLM_CHUNK_SIZE`` on the flow's task runner (Dask
workers, or threads) and writes each chunk's answers to the DuckDB cache as the chunk
returns, so the cache keeps its guarantees (one writer, an answer written as it comes back, a
prompt claimed before it is sent). A worker gets its chunk's prompts as its input and returns
their outcomes; it never opens the database.

``PNGNN_LLM_RATE_LIMIT`` (requests/s) holds across every worker and thread through a Prefect
global concurrency limit (``RATE_LIMIT_NAME``) used as a rate limit: one slot that decays at R
per second, taken before each request (``rate_limit``, through the client's throttle hook).
One slot, not R: a limit of R slots would let a burst of R go at once and R more within the
same second.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prefect import task, unmapped
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectNotFound
from prefect.futures import as_completed
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from pngnn.augment.client import Request
from pngnn.augment.fanout import ChunkedClient, ChunkResult, Dispatch, ask_chunk, augment_chunked
from pngnn.augment.throttle import Throttle, no_throttle
from pngnn.core.errors import PngnnError, TransientError
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data.split import SplitData
from tasks.augment import AUGMENT_RETRY_DELAYS
from tasks.runners import running_on_dask
from tasks.storage import per_run_key, result_storage

RATE_LIMIT_NAME = "pngnn-llm-requests"


def ensure_rate_limit(rate: float, name: str = RATE_LIMIT_NAME) -> None:
    """Create or update the global concurrency limit ``name``: 1 slot, decaying at ``rate``/s."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=1, slot_decay_per_second=rate, active=True))
        else:
            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=1, slot_decay_per_second=rate, active=True))


def prefect_throttle(name: str | None) -> Throttle:
    """The client's throttle: take a slot of the rate limit ``name`` before each request (wait
    while it is taken); None: no limit."""
    if name is None:
        return no_throttle

    def throttle() -> None:
        rate_limit(name, occupy=1, strict=True)

    return throttle


@task(name="llm-chunk", task_run_name="llm-chunk-seed{seed}-{index}", cache_key_fn=per_run_key)
def llm_chunk_task(requests: list[Request], llm: LLMSettings, rate_limit_name: str | None = None,
                   seed: int = 0, index: int = 0) -> ChunkResult:
    """Ask the LLM about one chunk of prompts (``pngnn.augment.fanout.ask_chunk``); their
    outcomes out. Not retried itself: a failed chunk fails this attempt of ``fanout_augment``,
    whose retry asks only what is not cached."""
    return ask_chunk(requests, LLMSettings.model_validate(llm), prefect_throttle(rate_limit_name))


def prefect_dispatch(llm: LLMSettings, settings: Settings, seed: int, rate_limit_name: str | None) -> Dispatch:
    """Chunks -> ``llm_chunk_task`` mapped on the flow's task runner; results as each completes."""
    chunk_task = llm_chunk_task.with_options(result_storage=result_storage(settings), persist_result=True)
    sent = 0

    def dispatch(chunks: list[list[Request]]) -> Iterator[ChunkResult]:
        nonlocal sent
        futures = chunk_task.map(chunks, unmapped(llm), unmapped(rate_limit_name), unmapped(seed),
                                 list(range(sent, sent + len(chunks))))
        sent += len(chunks)
        for future in as_completed(futures):
            yield future.result()

    return dispatch


def fans_out(llm: LLMSettings | dict[str, Any] | None, settings: Settings | None = None) -> bool:
    """Whether a flow augments through mapped chunks: on a Dask runner, or with a rate limit
    (which only the chunks apply), and with a configured LLM server (the embedded one serves
    the flow's process only, one request at a time)."""
    settings = settings or Settings.from_env()
    llm = LLMSettings.model_validate(llm or {})
    return llm.base_url is not None and (running_on_dask() or settings.llm_rate_limit is not None)


def _heals(error: BaseException) -> bool:
    """What the augment task retries (``tasks.augment``): transient failures, and any error that
    is not a user error (a crashed worker or LLM server)."""
    return isinstance(error, TransientError) or not isinstance(error, PngnnError)


def fanout_augment(settings: Settings, dataset: str, seed: int, llm: LLMSettings,
                   delays: tuple[float, ...] = AUGMENT_RETRY_DELAYS, split: SplitData | None = None) -> dict[str, Any]:
    """The augmentation of split ``seed`` (stored candidates) through mapped chunk tasks; its
    counts (``augment_step(merge=False)``'s), plus ``chunks``. Healed as the augment task is: a
    transient failure asks again after each of ``delays`` (answers cached meanwhile are kept,
    the failed run's claims released), a user error fails at once. ``split``: as the flow loaded it."""
    name = None
    if settings.llm_rate_limit is not None:
        ensure_rate_limit(settings.llm_rate_limit)
        name = RATE_LIMIT_NAME
    waits = iter(delays)
    for attempt in Retrying(retry=retry_if_exception(_heals), stop=stop_after_attempt(len(delays) + 1),
                            wait=lambda state: next(waits), reraise=True):
        with attempt:
            client = ChunkedClient(llm, prefect_dispatch(llm, settings, seed, name), settings.llm_chunk_size)
            counts = augment_chunked(settings, dataset, seed, llm, client, split=split)
    counts["chunks"] = client.chunks_sent
    print(f"{dataset} seed {seed}: augmentation in {client.chunks_sent} chunks {counts}")
    return counts
