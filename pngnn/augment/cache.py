"""The LLM answer cache: a DuckDB table keyed by the sha256 of what determines the answer.

The key covers (model, prompt version, messages, sampling params) and nothing else: not
the base_url (the same model behind another URL answers the same), not the API key
(never stored), not the response_format form (a transport detail the client may change
when a server rejects it). Each answer is written as soon as it arrives, in its own
autocommitted statement, so a crash loses at most the requests in flight, and a rerun
sends only what is missing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from pngnn.store import Store

# Statuses (see sql/llm.sql). 'unreachable' is always retried: it says the server was
# down, not that the prompt is bad. 'invalid' and 'failed' are retried only on request.
OK, INVALID, FAILED, UNREACHABLE = "ok", "invalid", "failed", "unreachable"
FAILURES = (INVALID, FAILED, UNREACHABLE)


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


_INSERT = (
    "INSERT OR REPLACE INTO llm_cache (key, model, prompt_version, request, raw_answer, status, like_idx, "
    "dislike_idx, error, latency_s, attempts, prompt_tokens, completion_tokens, created) "
    "VALUES ($key, $model, $prompt_version, $request, $raw_answer, $status, $like_idx, $dislike_idx, $error, "
    "$latency_s, $attempts, $prompt_tokens, $completion_tokens, now())"
)


class LLMCache:
    """Reads and writes ``llm_cache`` through one Store (call from one thread only:
    the batch runner's workers hand their results to the thread that owns the store)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.run("llm")

    def put(self, entry: CacheEntry) -> None:
        """Write one outcome now (autocommit): it survives a crash a second later."""
        self.store.con.execute(_INSERT, entry.__dict__)

    def statuses(self, keys: list[str]) -> dict[str, str]:
        """Status of each cached key among ``keys`` (absent keys are not in the dict)."""
        if not keys:
            return {}
        self.store.register("wanted_keys", pl.DataFrame({"key": keys}, schema={"key": pl.String}))
        try:
            rows = self.store.con.execute(
                "SELECT c.key, c.status FROM llm_cache c JOIN (SELECT DISTINCT key FROM wanted_keys) w USING (key)"
            ).fetchall()
        finally:
            self.store.unregister("wanted_keys")
        return dict(rows)

    def to_send(self, keys: list[str], retry_failed: bool = False) -> set[str]:
        """Keys that need a request: not cached, cached as 'unreachable', or (when
        ``retry_failed``) cached as 'invalid'/'failed'. An 'ok' answer is never re-asked."""
        known = self.statuses(keys)
        again = set(FAILURES) if retry_failed else {UNREACHABLE}
        return {k for k in keys if k not in known or known[k] in again}

    def get(self, key: str) -> dict[str, Any] | None:
        frame = self.store.query("SELECT * FROM llm_cache WHERE key = $key", key=key)
        return frame.row(0, named=True) if frame.height else None

    def counts(self) -> dict[str, int]:
        """Rows per status over the whole table."""
        return dict(self.store.con.execute("SELECT status, count(*) FROM llm_cache GROUP BY status").fetchall())
