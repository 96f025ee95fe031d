"""Batch prompting of any OpenAI-compatible chat server (OpenAI, vLLM, Ollama, llama.cpp).

Why it is built this way:

* The ``openai`` SDK is the client, with its own retries off (``max_retries=0``):
  ``tenacity`` owns retrying so every attempt is counted, 429 answers wait as long as
  the server's Retry-After says, and other transient failures (timeouts, connection
  errors, 5xx) back off exponentially with jitter so parallel workers do not retry in
  lockstep.
* Structured output differs between servers: OpenAI and vLLM take
  ``{"type": "json_schema", ...}``; llama.cpp-style servers take
  ``{"type": "json_object", "schema": ...}`` and answer 500 to the former. ``schema_mode``
  picks one; ``auto`` (the default) tries json_schema on the first request, falls back to
  json_object and then to no response_format when the server answers 4xx/5xx, and keeps
  the first form that worked for the rest of the batch. The lenient parser reads the
  answer whichever way it came.
* Concurrency is a bounded thread pool (the SDK's sync client is thread-safe and the work
  is waiting on the network); results return to the calling thread, which alone writes
  to DuckDB.
* Problems the user must fix end the run with a one-line ``PngnnError``: server down
  (naming base_url), wrong model name, missing or rejected API key for a remote URL. The
  API key is never logged, stored or shown in ``repr``.

Its settings (``pngnn.settings.LLMSettings``, from PNGNN_LLM_* variables) are the same for every
server; README's LLM table gives them for llama.cpp, OpenAI, vLLM and Ollama.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tqdm.auto import tqdm

from pngnn.augment.cache import FAILED, INVALID, OK, UNREACHABLE, CacheEntry, canonical_json
from pngnn.augment.parse import AnswerError, answer_schema, parse_answer
from pngnn.errors import PngnnError
from pngnn.settings import LLMSettings

log = logging.getLogger(__name__)

_FALLBACK = {"json_schema": "json_object", "json_object": "none"}


@dataclass(frozen=True)
class Request:
    """One prompt to send: its cache key, chat messages and number of candidates."""

    key: str
    messages: list[dict[str, str]]
    n: int
    prompt_version: str


@dataclass
class BatchCounts:
    """What a batch did. ``sent``: requests that got a final outcome from the server side
    (answered or failed after retries); ``failed``: invalid + failed + unreachable."""

    total: int = 0
    cached: int = 0
    sent: int = 0
    ok: int = 0
    invalid: int = 0
    failed: int = 0
    unreachable: int = 0
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return self.invalid + self.failed + self.unreachable

    def add(self, status: str) -> None:
        self.sent += 1
        setattr(self, status, getattr(self, status) + 1)


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After-Ms, Retry-After as seconds or an
    HTTP date), or None."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_transient(exc: BaseException) -> bool:
    """Worth another attempt: rate limits, timeouts, connection errors and 5xx."""
    if isinstance(exc, openai.RateLimitError | openai.APIConnectionError):  # timeouts are connection errors
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def _short(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        message = str(getattr(exc, "message", "") or exc).splitlines()[0][:200]
        return f"HTTP {exc.status_code}: {message}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(": ")


@dataclass
class _Reply:
    text: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int


class LLMClient:
    """An OpenAI-compatible chat client with retries, schema-form fallback and batching."""

    def __init__(self, settings: LLMSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        if settings.base_url is None:
            raise PngnnError("no LLM server to ask: set PNGNN_LLM_BASE_URL (augment_step starts the embedded "
                             "server when it is unset)")
        self.settings = settings
        self._sleep = sleep
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.resolved_api_key(),
            timeout=settings.timeout,
            max_retries=0,
        )
        self._lock = threading.Lock()
        self._mode = "json_schema" if settings.schema_mode == "auto" else settings.schema_mode
        self._pinned = settings.schema_mode != "auto"
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_initial_s, max=settings.backoff_max_s, jitter=settings.backoff_initial_s
        )

    @property
    def schema_mode(self) -> str:
        """The response_format form in use (after any auto fallback)."""
        return self._mode

    def close(self) -> None:
        self._client.close()

    # -- preflight ------------------------------------------------------------------
    def check(self) -> None:
        """Fail fast, before any prompt: server reachable, key accepted, model served."""
        s = self.settings
        try:
            page = self._client.models.list()
            ids = [m.id for m in page.data]
        except openai.APIConnectionError as exc:
            raise PngnnError(
                f"LLM server at {s.base_url} is unreachable ({_short(exc)}); start it or set PNGNN_LLM_BASE_URL"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            # Not the server's message: OpenAI's echoes part of the key.
            raise PngnnError(
                f"LLM server at {s.base_url} rejected the API key (HTTP {exc.status_code}); set PNGNN_LLM_API_KEY"
            ) from None
        except openai.APIStatusError as exc:  # e.g. no /models route: the name is checked on first use
            log.info("cannot list models at %s (%s); skipping the model name check", s.base_url, _short(exc))
            return
        if s.check_model and ids and not ({s.model, f"{s.model}:latest"} & set(ids)):
            shown = ", ".join(ids[:8]) + (" ..." if len(ids) > 8 else "")
            raise PngnnError(
                f"model '{s.model}' is not served by {s.base_url} (it serves: {shown}); set PNGNN_LLM_MODEL"
            )

    # -- one request ----------------------------------------------------------------
    def _response_format(self, mode: str, n: int) -> dict[str, Any] | None:
        schema = answer_schema(n)
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "movie_choice", "schema": schema, "strict": True}}
        if mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = retry_after_seconds(exc)
        if after is not None:  # honour the server, plus a little jitter against stampedes
            return min(after, self.settings.max_retry_after_s) + random.uniform(0, 0.1 * after)
        return float(self._backoff(state))

    def _send(self, messages: list[dict[str, str]], n: int, mode: str, retry_5xx: bool) -> _Reply:
        s = self.settings
        kwargs: dict[str, Any] = {"model": s.model, "messages": messages, **s.sampling_params()}
        response_format = self._response_format(mode, n)
        if response_format is not None:
            kwargs["response_format"] = response_format

        def retryable(exc: BaseException) -> bool:
            return _is_transient(exc) and (retry_5xx or not isinstance(exc, openai.APIStatusError)
                                           or exc.status_code == 429)

        retrying = Retrying(
            stop=stop_after_attempt(s.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(retryable),
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda st: log.debug(
                "retrying after %s (attempt %d)", _short(st.outcome.exception()), st.attempt_number
            ),
        )
        for attempt in retrying:
            with attempt:
                resp = self._client.chat.completions.create(**kwargs)
        choice = resp.choices[0] if resp.choices else None
        usage = resp.usage
        return _Reply(
            text=choice.message.content if choice is not None and choice.message is not None else None,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            attempts=attempt.retry_state.attempt_number,
        )

    def _complete(self, messages: list[dict[str, str]], n: int) -> _Reply:
        """Send with the current schema form; while the form is not settled (auto mode,
        first request), a 4xx/5xx answer moves to the next form instead of retrying."""
        extra = 0
        while True:
            with self._lock:
                mode, pinned = self._mode, self._pinned
            if pinned or mode == "none":
                reply = self._send(messages, n, mode, retry_5xx=True)
                reply.attempts += extra
                return reply
            try:
                reply = self._send(messages, n, mode, retry_5xx=False)
            except openai.APIStatusError as exc:
                if exc.status_code in (401, 403, 404, 429):
                    raise
                with self._lock:
                    if self._mode == mode and not self._pinned:
                        self._mode = _FALLBACK[mode]
                log.warning("server %s answered %s to response_format=%s; trying %s", self.settings.base_url,
                            _short(exc), mode, _FALLBACK[mode])
                extra += 1
                continue
            with self._lock:
                self._pinned = True
            reply.attempts += extra
            return reply

    def process(self, request: Request) -> CacheEntry:
        """Send one prompt and turn the outcome into a cache row. Raises PngnnError only
        for what ends the whole run (key rejected, model or endpoint not found)."""
        s = self.settings
        request_json = canonical_json(
            {"model": s.model, "messages": request.messages, "params": s.sampling_params()}
        )
        base = {"key": request.key, "model": s.model, "prompt_version": request.prompt_version,
                "request": request_json}
        start = time.perf_counter()
        try:
            reply = self._complete(request.messages, request.n)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            # Not the server's message: OpenAI's echoes part of the key.
            raise PngnnError(
                f"LLM server at {s.base_url} rejected the API key (HTTP {exc.status_code}); set PNGNN_LLM_API_KEY"
            ) from None
        except openai.NotFoundError as exc:
            raise PngnnError(
                f"LLM server at {s.base_url} has no model '{s.model}' or no chat endpoint ({_short(exc)}); "
                "check PNGNN_LLM_MODEL and that the base_url ends in /v1"
            ) from None
        except openai.APITimeoutError as exc:
            return CacheEntry(**base, status=FAILED, error=f"timeout after {s.max_attempts} attempt(s): {_short(exc)}",
                              latency_s=time.perf_counter() - start, attempts=s.max_attempts)
        except openai.APIConnectionError as exc:
            return CacheEntry(**base, status=UNREACHABLE, error=f"connection failed after {s.max_attempts} "
                              f"attempt(s): {_short(exc)}", latency_s=time.perf_counter() - start,
                              attempts=s.max_attempts)
        except openai.APIStatusError as exc:
            attempts = s.max_attempts if _is_transient(exc) else 1
            return CacheEntry(**base, status=FAILED, error=f"{_short(exc)} after {attempts} attempt(s)",
                              latency_s=time.perf_counter() - start, attempts=attempts)
        except (openai.OpenAIError, ValueError) as exc:  # a 200 whose body is not a chat completion
            return CacheEntry(**base, status=FAILED, error=f"unreadable response: {_short(exc)}",
                              latency_s=time.perf_counter() - start, attempts=1)
        latency = time.perf_counter() - start
        common = {**base, "raw_answer": reply.text, "latency_s": latency, "attempts": reply.attempts,
                  "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens}
        try:
            answer = parse_answer(reply.text, request.n)
        except AnswerError as exc:
            return CacheEntry(**common, status=INVALID, error=str(exc))
        return CacheEntry(**common, status=OK, like_idx=answer.like, dislike_idx=answer.dislike)

    # -- a batch --------------------------------------------------------------------
    def run_batch(
        self,
        requests: Iterable[Request],
        on_result: Callable[[CacheEntry], None],
        cached: int = 0,
        progress: bool = True,
    ) -> BatchCounts:
        """Send ``requests`` with at most ``concurrency`` in flight; ``on_result`` gets each
        outcome in the calling thread as soon as it arrives (write it to the cache there).

        The first request goes alone when the schema form is not settled, so the whole
        pool does not hit a server with a form it rejects. Pending requests are cancelled
        when the run ends early (a fatal error, the server down, Ctrl-C).
        """
        pending = list(requests)
        counts = BatchCounts(total=len(pending) + cached, cached=cached)
        start = time.perf_counter()
        bar = tqdm(total=counts.total, initial=cached, desc="LLM", unit="req", disable=not progress)
        streak = 0

        def record(entry: CacheEntry) -> None:
            nonlocal streak
            on_result(entry)
            counts.add(entry.status)
            streak = streak + 1 if entry.status == UNREACHABLE else 0
            bar.update(1)
            bar.set_postfix(cached=counts.cached, sent=counts.sent, failed=counts.failures, refresh=False)
            if streak >= self.settings.abort_after_unreachable:
                raise PngnnError(
                    f"LLM server at {self.settings.base_url} stopped answering ({streak} requests in a row could "
                    "not connect); answers so far are cached: restart the server and rerun to resume"
                )

        try:
            if pending and not self._pinned:
                record(self.process(pending.pop(0)))
            pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="llm")
            try:
                queue = iter(pending)
                inflight: set[Future[CacheEntry]] = set()
                for request in queue:  # keep at most `concurrency` submitted: cancellation stays cheap
                    inflight.add(pool.submit(self.process, request))
                    if len(inflight) >= self.settings.concurrency:
                        break
                while inflight:
                    done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                    for future in done:
                        record(future.result())
                        nxt = next(queue, None)
                        if nxt is not None:
                            inflight.add(pool.submit(self.process, nxt))
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        finally:
            bar.close()
            counts.seconds = time.perf_counter() - start
        return counts
