"""The LLM answer cache: a DuckDB table keyed by the sha256 of what determines the answer.

The key covers (model, prompt version, messages, sampling params) and nothing else: not
the base_url (the same model behind another URL answers the same), not the API key
(never stored), not the response_format form (a transport detail the client may change
when a server rejects it). Each answer is written as soon as it arrives (within 0.25 s
when a fast server answers faster than that), through a short-lived connection so other
processes can use the database during a long batch: a crash loses at most the requests
in flight and the last fraction of a second, and a rerun sends only what is missing or
failed for a passing reason.

A failure is stored with its class: 'transient' (429, 5xx, timeout, connection: the next
run asks again) or 'permanent' (another 4xx, an unusable answer: asked again only with
``retry_failed``). Before a prompt is sent it is claimed in ``llm_claims``
(``PromptClaims``), so concurrent runs over the same prompts pay for each once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pngnn.core.errors import PngnnError, TransientError
from pngnn.data.sql_files import bind, sql_statement, sql_statements
from pngnn.data.store import Store, connect

# Statuses (see pngnn/data/sql/llm.sql) and the classes of the failures among them: a transient
# failure is asked again by the next run, a permanent one only on request (retry_failed).
OK, INVALID, FAILED, UNREACHABLE = "ok", "invalid", "failed", "unreachable"
TRANSIENT, PERMANENT = "transient", "permanent"
log = logging.getLogger(__name__)
FAILURES = (INVALID, FAILED, UNREACHABLE)
# The class of a failure whose writer did not say (the client always does).
_DEFAULT_CLASS = {INVALID: PERMANENT, FAILED: TRANSIENT, UNREACHABLE: TRANSIENT}


def canonical_json(value: Any) -> str:
    """Stable JSON (sorted keys, no spaces, UTF-8 kept): equal requests, equal bytes."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def cache_key(model: str, prompt_version: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of what determines an answer."""
    payload = {"model": model, "prompt_version": prompt_version, "messages": messages, "params": params}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """One request's outcome, as stored."""

    key: str
    model: str
    prompt_version: str
    request: str  # canonical JSON of model, messages, params (never the API key)
    status: str
    raw_answer: str | None = None
    like_idx: int | None = None
    dislike_idx: int | None = None
    error: str | None = None
    latency_s: float | None = None
    attempts: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    failure: str | None = None  # TRANSIENT or PERMANENT for a failure; None for 'ok'
    scores: str | None = None  # JSON list: the like's log-probability per candidate (scoring=logprobs)

    def __post_init__(self) -> None:
        if self.failure is None and self.status != OK:  # every failure row carries a class
            object.__setattr__(self, "failure", _DEFAULT_CLASS.get(self.status, TRANSIENT))


def asked_again(status: str, failure: str | None, retry_failed: bool) -> bool:
    """Whether a cached outcome is asked again: never an answer, always a transient
    failure, a permanent one only when ``retry_failed``."""
    if status == OK:
        return False
    return retry_failed or failure != PERMANENT


class LLMCache:
    """Reads and writes ``llm_cache`` through one Store (call from one thread only:
    the batch runner's workers hand their results to the thread that owns the store)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, entry: CacheEntry) -> None:
        """Write one outcome now (autocommit): it survives a crash a second later."""
        self.store.run_file("put_llm_answer", **entry.__dict__)

    def outcomes(self, keys: list[str]) -> dict[str, tuple[str, str | None]]:
        """(status, failure class) of each cached key among ``keys`` (absent keys are not in
        the dict)."""
        if not keys:
            return {}
        self.store.register("wanted_keys", pl.DataFrame({"key": keys}, schema={"key": pl.String}))
        try:
            rows = self.store.query_file("cached_statuses")
        finally:
            self.store.unregister("wanted_keys")
        return {k: (s, f) for k, s, f in rows.select("key", "status", "failure").iter_rows()}

    def statuses(self, keys: list[str]) -> dict[str, str]:
        """Status of each cached key among ``keys`` (absent keys are not in the dict)."""
        return {k: status for k, (status, _) in self.outcomes(keys).items()}

    def to_send(self, keys: list[str], retry_failed: bool = False) -> set[str]:
        """Keys that need a request: not cached, cached as a transient failure (429, 5xx,
        timeout, connection), or (when ``retry_failed``) as any failure, invalid answers
        included. An 'ok' answer is never re-asked."""
        known = self.outcomes(keys)
        return {k for k in keys if k not in known or asked_again(*known[k], retry_failed)}

    def get(self, key: str) -> dict[str, Any] | None:
        frame = self.store.query_sql("SELECT * FROM llm_cache WHERE key = $key", key=key)
        return frame.row(0, named=True) if frame.height else None

    def counts(self) -> dict[str, int]:
        """Rows per status over the whole table."""
        frame = self.store.query_sql("SELECT status, count(*) AS n FROM llm_cache GROUP BY status")
        return dict(zip(frame["status"], frame["n"], strict=True))


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (POSIX; elsewhere assume it does and
    let its leases expire: ``os.kill(pid, 0)`` would signal it there)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


@dataclass(frozen=True)
class ClaimRound:
    """Where the wanted prompts stand after one claim: ``claimed`` by this run now (send
    them), ``answered`` by another run meanwhile (done), ``held`` by another run (wait)."""

    claimed: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    held: int = 0


class PromptClaims:
    """This run's claims on prompts in ``llm_claims`` (``pngnn/data/sql/llm.sql``): one payer
    per prompt across processes.

    DuckDB lets one process write at a time, and the batch keeps the file closed, so a
    claim is a short transaction of its own: take a chunk of free prompts, send them,
    take the next chunk. The claims of written answers go in the transaction that writes
    them (``DetachedCacheWriter``), which also renews this run's other leases; what is
    left goes when the run ends (``release_all``). A run that crashed holds its claims
    until its process is seen gone (same host) or its leases expire.
    """

    def __init__(self, path: Path, lease_s: float, lock_wait_s: float = 600.0) -> None:
        self.path, self.lease_s, self.lock_wait_s = path, lease_s, lock_wait_s
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}"

    def take(self, keys: list[str], limit: int, since: datetime) -> ClaimRound:
        """Claim up to ``limit`` of ``keys`` (in order) that nobody holds and nobody
        answered since ``since``; say where the others stand."""
        with Store(self.path, wait_s=self.lock_wait_s) as store, store.transaction():
            dead = [o for o, pid in store.query_file("claim_owners", host=self.host, owner=self.owner).iter_rows()
                    if not _process_alive(pid)]
            store.register("dead_owners", pl.DataFrame({"owner": dead}, schema={"owner": pl.String}))
            store.register("claim_wanted", pl.DataFrame({"key": keys, "pos": range(len(keys))},
                                                        schema={"key": pl.String, "pos": pl.Int64}))
            try:
                rows = store.query_file("claim_prompts", owner=self.owner, host=self.host, pid=self.pid,
                                        lease_s=self.lease_s, limit=limit, since=since)
            finally:
                store.unregister("dead_owners", "claim_wanted")
        by_state: dict[str, list[str]] = {}
        for key, state in rows.iter_rows():
            by_state.setdefault(state, []).append(key)
        return ClaimRound(by_state.get("claimed", []), by_state.get("answered", []), len(by_state.get("held", [])))

    def written(self, con: duckdb.DuckDBPyConnection, keys: list[str]) -> None:
        """Inside the transaction writing the answers of ``keys``: drop their claims and
        renew this run's other leases."""
        statements = sql_statements("claims_written")
        params = {"owner": self.owner, "keys": keys, "lease_s": self.lease_s}
        for statement, used in zip(statements, bind(statements, params, "SQL file 'claims_written'"), strict=True):
            con.execute(statement, used)

    def release_all(self) -> None:
        """Drop this run's remaining claims (it ends), so no other run waits for them; if
        the file stays locked, they lapse with their leases."""
        try:
            with Store(self.path, wait_s=min(self.lock_wait_s, 30.0)) as store:
                store.run_file("release_claims", owner=self.owner)
        except PngnnError as exc:
            log.warning("could not drop this run's claims in %s (%s); they lapse within %.0f s", self.path, exc,
                        self.lease_s)


class DetachedCacheWriter:
    """Writes answers into ``llm_cache`` through short-lived connections, so the DuckDB
    file is free for other processes (a training run, a report) during a long batch.

    An answer is written as it arrives unless the previous write was less than
    ``max_delay_s`` ago (a fast server): then it waits for the next write, at most that
    long in the normal case. When another process holds the file, answers stay buffered
    and go with a later write; ``close`` writes what is left, waiting up to ``lock_wait_s``.
    A crash therefore loses the requests in flight plus at most the answers of the last
    ``max_delay_s`` (or of a stretch in which the file was locked by someone else).
    With ``claims``, each write also drops the claims of the answers it writes.
    """

    def __init__(self, path: Path, max_delay_s: float = 0.25, lock_wait_s: float = 600.0,
                 claims: PromptClaims | None = None) -> None:
        self.path, self.max_delay_s, self.lock_wait_s = path, max_delay_s, lock_wait_s
        self.claims = claims
        self.buffer: list[CacheEntry] = []
        self.last_write = float("-inf")
        self.written = 0

    def put(self, entry: CacheEntry) -> None:
        self.buffer.append(entry)
        if time.monotonic() - self.last_write >= self.max_delay_s:
            self.flush(block=False)

    def flush(self, block: bool = True) -> None:
        if not self.buffer:
            return
        try:
            con = connect(self.path, wait_s=self.lock_wait_s if block else 0.0)
        except TransientError:
            if block:
                raise TransientError(
                    f"{len(self.buffer)} LLM answers could not be written: {self.path} stayed locked by another "
                    f"process for {self.lock_wait_s:.0f} s",
                    "close it and rerun (answers not written are asked again)",
                ) from None
            log.info("%s is locked by another process; %d answers wait for the next write", self.path,
                     len(self.buffer))
            return
        try:
            con.begin()
            con.executemany(sql_statement("put_llm_answer"), [e.__dict__ for e in self.buffer])
            if self.claims is not None:
                self.claims.written(con, [e.key for e in self.buffer])
            con.commit()
        except duckdb.Error:
            con.rollback()
            raise
        finally:
            con.close()
        self.written += len(self.buffer)
        self.buffer.clear()
        self.last_write = time.monotonic()

    def close(self) -> None:
        self.flush(block=True)
