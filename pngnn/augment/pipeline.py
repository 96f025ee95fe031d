"""``augment``: candidates -> prompts -> cache lookup -> LLM -> cache, for one split.

One call does every step so the Prefect task and the CLI stay thin, and each step's
output lives in DuckDB (``llm_candidates``, ``llm_prompts``, ``llm_cache``), so a run
that dies half-way resumes where it stopped: only prompts without a cached answer (or
with a transient failure) are sent. A fully cached rerun never contacts the server (it
may even be down). Runs at the same time share the prompts through claims
(``PromptClaims``): each prompt is sent by one of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from pngnn.augment.cache import (
    OK,
    PERMANENT,
    DetachedCacheWriter,
    LLMCache,
    PromptClaims,
    cache_key,
)
from pngnn.augment.candidates import (
    DEFAULT_CANDIDATES,
    candidates_frame,
    load_candidates,
    save_candidates,
    select_users,
)
from pngnn.augment.client import BatchCounts, Elsewhere, LLMClient, Request
from pngnn.augment.history import train_fingerprints
from pngnn.augment.prompts import DEFAULT_HISTORY, build_prompts, messages
from pngnn.augment.wording import wording_for
from pngnn.core.constants import DEFAULT_MAX_FAILED_SHARE, DEFAULT_RANKER, UserOrder
from pngnn.core.errors import TransientError, UserError
from pngnn.core.settings import LLMSettings
from pngnn.data.split import SplitData, load_split
from pngnn.data.store import Store
from pngnn.models.base import GraphRecommender

log = logging.getLogger(__name__)

CLAIM_CHUNK_PER_WORKER = 2  # prompts claimed at a time, per request in flight


@dataclass
class AugmentSummary:
    """Counts for logging (MLflow metrics) and for the caller's checks. ``sent`` ...
    ``unreachable``: what this run asked and got; ``shared``: prompts another run answered
    meanwhile; ``usable``, ``failed_transient``, ``failed_permanent``: where all the
    prompts stand after the run, cached ones included."""

    dataset: str
    seed: int
    model: str
    prompt_version: str
    schema_mode: str
    users: int
    prompts: int
    cached: int
    sent: int
    ok: int
    invalid: int
    failed: int
    unreachable: int
    seconds: float
    shared: int = 0
    usable: int = 0
    failed_transient: int = 0
    failed_permanent: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def failed_share(self) -> float:
        """Share of the prompts without a usable answer (0 when there are none)."""
        return (self.failed_transient + self.failed_permanent) / self.prompts if self.prompts else 0.0


def check_failures(summary: AugmentSummary, max_failed_share: float = DEFAULT_MAX_FAILED_SHARE) -> None:
    """Fail when more than ``max_failed_share`` of the prompts have no usable answer.

    A ``TransientError`` when asking the transient failures again could bring the share
    under the bar (a rerun does; so does a Prefect task retry), else a ``UserError``.
    """
    if summary.failed_share <= max_failed_share:
        return
    failed = summary.failed_transient + summary.failed_permanent
    problem = (f"{failed} of {summary.prompts} LLM prompts of {summary.dataset} split {summary.seed} have no usable "
               f"answer ({summary.failed_share:.0%}, over --max-failed-share {max_failed_share:g}: "
               f"{summary.failed_transient} transient, {summary.failed_permanent} permanent), so training would get "
               f"the edges of {summary.usable} answers only")
    if summary.failed_permanent / summary.prompts <= max_failed_share:
        raise TransientError(problem, "the answers so far are cached: rerun to ask the transient failures again, "
                                      "or raise --max-failed-share")
    raise UserError(problem, "see the errors in llm_cache; rerun with --retry-failed to ask them again, "
                             "or raise --max-failed-share")


def claim_lease_s(settings: LLMSettings) -> float:
    """How long a claim holds without renewal: the longest one prompt can take (every
    attempt timing out, the longest wait between attempts, every parse try), plus a
    minute. A working run renews its claims with each answer it writes."""
    waits = (settings.max_attempts - 1) * max(settings.backoff_max_s, settings.max_retry_after_s)
    return settings.parse_attempts * (settings.max_attempts * settings.timeout + waits) + 60.0


def claimed_requests(requests: list[Request], claims: PromptClaims, chunk: int, since: datetime,
                     flush: Callable[[], None]) -> Iterator[Request | Elsewhere]:
    """``requests`` as a batch feed: a chunk at a time, each claimed before it is sent;
    prompts another run answered since ``since`` are dropped, and while the rest is held
    by other runs the feed says wait (``LLMClient.run_batch`` asks it again later).

    ``flush`` writes the answers still buffered (and so drops their claims) before each
    claim: two runs each waiting for prompts whose answers the other holds unwritten
    would otherwise wait for each other until the leases expire."""
    pending = {r.key: r for r in requests}
    while pending:
        flush()
        took = claims.take(list(pending), chunk, since)
        for key in took.answered:
            pending.pop(key, None)
        claimed = set(took.claimed)
        mine = [pending.pop(key) for key in list(pending) if key in claimed]
        if took.answered or not mine:
            yield Elsewhere(answered=len(took.answered), wait=not mine and bool(pending))
        yield from mine


def _save_prompts(store: Store, dataset: str, seed: int, model: str, prompt_version: str,
                  prompts: pl.DataFrame) -> None:
    """Replace the (user, variant) -> cache key links of these users for this model and
    prompt version, with the fingerprint of the train history each prompt shows, in one transaction."""
    history = train_fingerprints(store, dataset, seed).select("user_id", "history_fp")
    frame = prompts.select("user_id", "variant", "key", "items").join(
        history.with_columns(pl.col("user_id").cast(prompts.schema["user_id"])), on="user_id", how="left")
    store.register("new_prompts", frame)
    try:
        with store.transaction():
            store.run_file("save_prompts", dataset=dataset, seed=seed, model=model, prompt_version=prompt_version)
    finally:
        store.unregister("new_prompts")


def augment(
    store: Store,
    dataset: str,
    seed: int,
    model: GraphRecommender | None,
    settings: LLMSettings | None = None,
    *,
    users: Sequence[int] | None = None,
    sample: int | None = None,
    sample_seed: int = 0,
    users_by: UserOrder = "random",
    n_candidates: int = DEFAULT_CANDIDATES,
    history_size: int = DEFAULT_HISTORY,
    prompt_seed: int = 0,
    self_consistency: bool = False,
    split: SplitData | None = None,
    client: LLMClient | None = None,
    progress: bool = True,
    ranker: str = DEFAULT_RANKER,
) -> AugmentSummary:
    """Ask the LLM, for each selected user of split ``seed``, which of the LightGCN
    candidates they would like most and least; answers land in ``llm_cache``.

    ``model``: the trained LightGCN giving the candidates; None reuses the candidates
    stored by an earlier run (resume without retraining). ``users``/``sample``/``users_by``:
    which users (default all; see ``select_users``). ``self_consistency``: ask each user twice with the candidates in
    two orders; the merge keeps only edges both answers agree on. Then call
    ``pngnn.augment.merge.merge_augmented`` to turn answers into edges. ``ranker``: the profile
    ``model`` was trained with, stored beside its candidates.
    """
    t0 = time.perf_counter()
    settings = settings or (client.settings if client is not None else LLMSettings())
    wording = wording_for(store, dataset)  # a user's dataset without titles: refused before any work
    selected = select_users(store, dataset, users, sample, sample_seed, by=users_by, seed=seed)
    if model is not None:
        split = split if split is not None else load_split(store, dataset, seed)
        candidates = candidates_frame(store, split, model, selected, n_candidates)
        save_candidates(store, dataset, seed, candidates, ranker)
    else:
        candidates = load_candidates(store, dataset, seed, selected)
    prompts = build_prompts(
        store, dataset, seed, candidates, history_size, prompt_seed, variants=2 if self_consistency else 1,
        wording=wording,
    )
    params = settings.sampling_params()
    chats = [messages(c, wording) for c in prompts["content"]]
    keys = [cache_key(settings.model, wording.version, m, params) for m in chats]
    prompts = prompts.with_columns(key=pl.Series(keys, dtype=pl.String))
    _save_prompts(store, dataset, seed, settings.model, wording.version, prompts)

    cache = LLMCache(store)
    unique: dict[str, Request] = {}
    for key, chat, n in zip(keys, chats, prompts["n"], strict=True):
        unique.setdefault(key, Request(key, chat, int(n), wording.version))
    since = store.scalar("SELECT CAST(now() AS TIMESTAMP)")  # as llm_cache.created is written
    to_send = cache.to_send(list(unique), settings.retry_failed)
    requests = [r for k, r in unique.items() if k in to_send]
    cached = len(unique) - len(requests)
    schema_mode = settings.schema_mode
    if requests:
        own = client is None
        client = client or LLMClient(settings)
        try:
            client.check()
            # The batch needs no database: let other processes use the file meanwhile.
            with store.released() as path:
                counts = _ask(client, requests, path, cache, cached, since, progress)
            schema_mode = client.schema_mode
        finally:
            if own:
                client.close()
    else:
        counts = BatchCounts(total=cached, cached=cached)
    outcomes = cache.outcomes(list(unique))
    usable = sum(status == OK for status, _ in outcomes.values())
    permanent = sum(status != OK and failure == PERMANENT for status, failure in outcomes.values())
    summary = AugmentSummary(
        dataset=dataset,
        seed=seed,
        model=settings.model,
        prompt_version=wording.version,
        schema_mode=schema_mode,
        users=selected.height,
        prompts=len(unique),
        cached=cached,
        sent=counts.sent,
        ok=counts.ok,
        invalid=counts.invalid,
        failed=counts.failed,
        unreachable=counts.unreachable,
        seconds=round(time.perf_counter() - t0, 3),
        shared=counts.shared,
        usable=usable,
        failed_transient=len(unique) - usable - permanent,
        failed_permanent=permanent,
    )
    log.info("augment %s", summary.to_dict())
    return summary


def _ask(client: LLMClient, requests: list[Request], path: Path | None, cache: LLMCache, cached: int,
         since: datetime, progress: bool) -> BatchCounts:
    """Send ``requests`` while the store is released (``path``: its file). Each prompt is
    claimed before it is sent and its answer written (with its claim dropped) through
    short connections; an in-memory store (``path`` None) is this process's alone."""
    if path is None:
        return client.run_batch(requests, cache.put, cached=cached, progress=progress)
    claims = PromptClaims(path, claim_lease_s(client.settings))
    writer = DetachedCacheWriter(path, claims=claims)
    chunk = CLAIM_CHUNK_PER_WORKER * client.settings.concurrency
    try:
        feed = claimed_requests(requests, claims, chunk, since, writer.flush)
        return client.run_batch(feed, writer.put, cached=cached, progress=progress, total=len(requests))
    finally:
        try:
            writer.close()
        finally:
            claims.release_all()
