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
  picks one; ``auto`` (the default) tries json_schema on the first request and keeps the
  first form that worked for the rest of the batch. It falls back (json_object, then no
  response_format) only when the answer says the form is unsupported: a 400/422 naming
  it, or a 5xx naming it that every retry got again (llama-cpp-python's validation
  error). Any other 5xx, a timeout or a 429 is retried in the same form: a passing fault
  must not switch structured output off for the whole batch. The lenient parser reads
  the answer whichever way it came.
* Each failure is classed (``pngnn/data/sql/llm.sql``): transient (429, 5xx, timeout,
  connection) is asked again by the next run; permanent (another 4xx, an answer still
  unusable after ``parse_attempts`` tries) only on request (``retry_failed``). A rejected
  key or an unknown model ends the run instead: nothing is cached for them.
* Concurrency is a bounded thread pool (the SDK's sync client is thread-safe and the work
  is waiting on the network); results return to the calling thread, which alone writes
  to DuckDB.
* Problems the user must fix end the run with a one-line ``PngnnError``: server down
  (naming base_url), wrong model name, missing or rejected API key for a remote URL. The
  API key is never logged, stored or shown in ``repr``.

Its settings (``pngnn.core.settings.LLMSettings``, from PNGNN_LLM_* variables) are the same for every
server; README's LLM table gives them for llama.cpp, OpenAI, vLLM and Ollama.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal, TypedDict

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tqdm.auto import tqdm

from pngnn.augment.cache import (
    FAILED,
    INVALID,
    OK,
    PERMANENT,
    TRANSIENT,
    UNREACHABLE,
    CacheEntry,
    canonical_json,
)
from pngnn.augment.logprobs import scores_from_response
from pngnn.augment.parse import AnswerError, answer_schema, parse_answer
from pngnn.augment.throttle import Throttle, no_throttle
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings

log = logging.getLogger(__name__)

# The response_format forms a request can take (the settings' schema_mode less "auto"), each
# falling back to the next.
ResponseForm = Literal["json_schema", "json_object", "none"]
_FALLBACK: dict[ResponseForm, ResponseForm] = {"json_schema": "json_object", "json_object": "none"}
# Words by which a server's error names the response_format it cannot take.
_FORMAT_WORDS = ("response_format", "response format", "json_schema", "json_object", "structured output", "guided_")
_RETRIED_4XX = (408, 409, 429)  # request timeout, conflict, rate limit: worth another attempt


@dataclass(frozen=True)
class Request:
    """One prompt to send: its cache key, chat messages and number of candidates."""

    key: str
    messages: list[dict[str, str]]
    n: int
    prompt_version: str


@dataclass(frozen=True)
class Elsewhere:
    """What a request feed yields instead of a ``Request`` when another process has part
    of the work (``pngnn.augment.pipeline``'s claims): ``answered`` prompts it answered
    meanwhile (done here too, not sent); ``wait``: the rest are claimed by it for now, so
    ask the feed again after the requests in flight, or after a pause."""

    answered: int = 0
    wait: bool = False


Feed = Iterable[Request | Elsewhere]


@dataclass
class BatchCounts:
    """What a batch did. ``sent``: requests that got a final outcome from the server side
    (answered or failed after retries); ``shared``: prompts another process answered
    meanwhile; ``failed``: invalid + failed + unreachable."""

    total: int = 0  # prompts in the batch
    cached: int = 0  # answered from the cache, not sent
    sent: int = 0
    shared: int = 0
    ok: int = 0  # a usable answer
    invalid: int = 0  # an answer that breaks the JSON contract (permanent)
    failed: int = 0  # an HTTP error, timeout or unreadable response after the retries
    unreachable: int = 0  # no connection to the server
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return self.invalid + self.failed + self.unreachable

    def add(self, status: str) -> None:
        self.sent += 1
        setattr(self, status, getattr(self, status) + 1)


PROGRESS_EVERY_S = 30.0  # a flow's log gets an LLM progress line at most this often


class ProgressLines:
    """What a progress bar says, as a log line every ``every`` seconds: where there is no
    terminal (a Prefect flow's log), a long LLM step is not silent for an hour."""

    def __init__(self, counts: BatchCounts, start: float, every: float | None = None) -> None:
        self.counts, self.start = counts, start
        self.every = PROGRESS_EVERY_S if every is None else every
        self.last = start

    def maybe(self, now: float | None = None) -> str | None:
        """Log (and return) a line when ``every`` seconds passed since the last one."""
        now = time.perf_counter() if now is None else now
        if now - self.last < self.every:
            return None
        self.last = now
        c = self.counts
        done = c.cached + c.shared + c.sent
        rate = c.sent / max(now - self.start, 1e-9)
        left = max(c.total - done, 0)
        eta = f"about {left / rate / 60:.0f} min left" if rate > 0 else "time left unknown"
        line = (f"LLM: {done} of {c.total} prompts done ({c.ok} answered, {c.failures} failed, {c.cached} cached, "
                f"{c.shared} by another run), {rate:.2f} requests/s, {eta}")
        log.info(line)
        return line


def _finite_seconds(text: str, scale: float = 1.0) -> float | None:
    """``text`` as a finite, non-negative number of seconds, or None: a header saying
    ``inf``, ``nan``, ``-1`` or ``1e400`` is no wait at all, not a reason to hang or crash."""
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _seconds_until(date: str) -> float | None:
    """Seconds from now to an HTTP date (a past one: 0), or None if it is not one."""
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After-Ms, Retry-After as seconds or an
    HTTP date), finite and non-negative; None when absent or unreadable (then the client
    backs off on its own)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    seconds = _finite_seconds(ms, 0.001) if ms else None
    if seconds is not None:
        return seconds
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    seconds = _finite_seconds(value)
    return seconds if seconds is not None else _seconds_until(value)


def capped_wait(after: float, cap: float) -> float:
    """The wait before the next attempt when the server asked for ``after`` seconds: that,
    plus up to 10 % jitter so parallel workers do not come back in lockstep, the whole of
    it never over ``cap`` (the jitter stays even when the server asked for more)."""
    base = min(after, cap / 1.1)
    return min(cap, base + random.uniform(0, 0.1 * base))


def _is_transient(exc: BaseException) -> bool:
    """Worth another attempt: rate limits, timeouts, connection errors, 408/409 and 5xx."""
    if isinstance(exc, openai.RateLimitError | openai.APIConnectionError):  # timeouts are connection errors
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code >= 500 or exc.status_code in _RETRIED_4XX)


def _rejects_format(exc: openai.APIStatusError) -> bool:
    """The server says it cannot take the response_format form sent: a 400/422, or a 5xx
    that outlived every retry, whose error names the form. A bare 5xx says nothing about
    the form."""
    if exc.status_code not in (400, 422) and exc.status_code < 500:
        return False
    text = f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}".lower()
    return any(word in text for word in _FORMAT_WORDS)


def _short(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        message = str(getattr(exc, "message", "") or exc).splitlines()[0][:200]
        return f"HTTP {exc.status_code}: {message}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(": ")


def _log_retry(state: RetryCallState) -> None:
    """tenacity's before_sleep: it follows an attempt that raised (retry_if_exception)."""
    exc = state.outcome.exception() if state.outcome is not None else None
    assert exc is not None, "a retry follows a raised exception"
    log.debug("retrying after %s (attempt %d)", _short(exc), state.attempt_number)


class _RowKey(TypedDict):
    """The fields every cache row of one request carries."""

    key: str
    model: str
    prompt_version: str
    request: str


class _TimedRow(_RowKey):
    latency_s: float


class _AnsweredRow(_TimedRow):
    raw_answer: str | None
    attempts: int
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass
class _Reply:
    text: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    attempts: int
    scores: list[float] | None = None  # like log-probabilities per candidate (scoring=logprobs)


class LLMClient:
    """An OpenAI-compatible chat client with retries, schema-form fallback and batching."""

    # How long a batch pauses, with nothing in flight, before asking its feed again while
    # another process holds the remaining prompts.
    poll_s: float = 0.5

    def __init__(self, settings: LLMSettings, sleep: Callable[[float], None] = time.sleep,
                 throttle: Throttle = no_throttle) -> None:
        if settings.base_url is None:
            raise PngnnError("no LLM server to ask: set PNGNN_LLM_BASE_URL (augment_step starts the embedded "
                             "server when it is unset)")
        self.settings = settings
        self._sleep = sleep
        self._throttle = throttle  # before every request, retries included (pngnn.augment.throttle)
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.resolved_api_key(),
            timeout=settings.timeout,
            max_retries=0,
        )
        self._lock = threading.Lock()
        self._mode: ResponseForm = "json_schema" if settings.schema_mode == "auto" else settings.schema_mode
        self._pinned = settings.schema_mode != "auto"
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_initial_s, max=settings.backoff_max_s, jitter=settings.backoff_initial_s
        )

    @property
    def schema_mode(self) -> ResponseForm:
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
    def _response_format(self, mode: ResponseForm, n: int) -> dict[str, Any] | None:
        schema = answer_schema(n)
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "movie_choice", "schema": schema, "strict": True}}
        if mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = retry_after_seconds(exc)
        if after is not None:  # honour the server, within max_retry_after_s
            return capped_wait(after, self.settings.max_retry_after_s)
        return float(self._backoff(state))

    def _send(self, messages: list[dict[str, str]], n: int, mode: ResponseForm) -> _Reply:
        """One request in form ``mode``, transient failures retried in that same form."""
        s = self.settings
        kwargs: dict[str, Any] = {"model": s.model, "messages": messages, **s.sampling_params()}
        response_format = self._response_format(mode, n)
        if response_format is not None:
            kwargs["response_format"] = response_format
        retrying = Retrying(
            stop=stop_after_attempt(s.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_is_transient),
            sleep=self._sleep,
            reraise=True,
            before_sleep=_log_retry,
        )
        for attempt in retrying:
            with attempt:
                self._throttle()
                resp = self._client.chat.completions.create(**kwargs)
        choice = resp.choices[0] if resp.choices else None
        usage = resp.usage
        return _Reply(
            text=choice.message.content if choice is not None and choice.message is not None else None,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            attempts=attempt.retry_state.attempt_number,
            scores=scores_from_response(choice, n) if s.scoring == "logprobs" and choice is not None else None,
        )

    def _complete(self, messages: list[dict[str, str]], n: int) -> _Reply:
        """Send with the current schema form. While the form is not settled (auto mode), an
        answer saying the form is unsupported moves to the next form, and the first answer
        settles it; any other failure leaves the form as it is."""
        extra = 0
        while True:
            with self._lock:
                mode, pinned = self._mode, self._pinned
            try:
                reply = self._send(messages, n, mode)
            except openai.APIStatusError as exc:
                if pinned or mode == "none" or not _rejects_format(exc):
                    raise
                self._fall_back(mode, exc)
                extra += self.settings.max_attempts if _is_transient(exc) else 1
                continue
            with self._lock:
                if self._mode == mode:
                    self._pinned = True
            reply.attempts += extra
            return reply

    def _fall_back(self, mode: ResponseForm, exc: openai.APIStatusError) -> None:
        """Move from ``mode`` to the next form, once for all workers that saw it rejected."""
        with self._lock:
            if self._mode == mode and not self._pinned:
                self._mode = _FALLBACK[mode]
        log.warning("server %s answered %s to response_format=%s; trying %s", self.settings.base_url,
                    _short(exc), mode, _FALLBACK[mode])

    def process(self, request: Request) -> CacheEntry:
        """Send one prompt and turn the outcome into a cache row. Raises PngnnError only
        for what ends the whole run (key rejected, model or endpoint not found)."""
        s = self.settings
        request_json = canonical_json(
            {"model": s.model, "messages": request.messages, "params": s.sampling_params()}
        )
        base: _RowKey = {"key": request.key, "model": s.model, "prompt_version": request.prompt_version,
                         "request": request_json}
        start = time.perf_counter()
        attempts = 0
        invalid: CacheEntry | None = None
        for _ in range(s.parse_attempts):
            try:
                reply = self._complete(request.messages, request.n)
            except openai.OpenAIError as exc:
                return self._failure(base, exc, time.perf_counter() - start, attempts)
            except ValueError as exc:  # a 200 whose body is not a chat completion
                return CacheEntry(**base, status=FAILED, failure=TRANSIENT, error=f"unreadable response: "
                                  f"{_short(exc)}", latency_s=time.perf_counter() - start, attempts=attempts + 1)
            attempts += reply.attempts
            common: _AnsweredRow = {**base, "raw_answer": reply.text, "latency_s": time.perf_counter() - start,
                      "attempts": attempts, "prompt_tokens": reply.prompt_tokens,
                      "completion_tokens": reply.completion_tokens}
            try:
                answer = parse_answer(reply.text, request.n)
            except AnswerError as exc:
                invalid = CacheEntry(**common, status=INVALID, failure=PERMANENT, error=str(exc))
                continue
            return CacheEntry(**common, status=OK, like_idx=answer.like, dislike_idx=answer.dislike,
                              scores=None if reply.scores is None else canonical_json(reply.scores))
        assert invalid is not None, "parse_attempts >= 1"
        return invalid

    def _failure(self, base: _RowKey, exc: openai.OpenAIError, latency: float, before: int) -> CacheEntry:
        """The cache row of a request that failed after its retries (``before``: attempts of
        earlier parse tries), classed transient or permanent; or the PngnnError that ends
        the run when retrying later cannot help (key rejected, no such model)."""
        s = self.settings
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            # Not the server's message: OpenAI's echoes part of the key.
            raise PngnnError(
                f"LLM server at {s.base_url} rejected the API key (HTTP {exc.status_code}); set PNGNN_LLM_API_KEY"
            ) from None
        if isinstance(exc, openai.NotFoundError):
            raise PngnnError(
                f"LLM server at {s.base_url} has no model '{s.model}' or no chat endpoint ({_short(exc)}); "
                "check PNGNN_LLM_MODEL and that the base_url ends in /v1"
            ) from None
        row: _TimedRow = {**base, "latency_s": latency}
        if isinstance(exc, openai.APITimeoutError):
            return CacheEntry(**row, status=FAILED, failure=TRANSIENT, attempts=before + s.max_attempts,
                              error=f"timeout after {s.max_attempts} attempt(s): {_short(exc)}")
        if isinstance(exc, openai.APIConnectionError):
            return CacheEntry(**row, status=UNREACHABLE, failure=TRANSIENT, attempts=before + s.max_attempts,
                              error=f"connection failed after {s.max_attempts} attempt(s): {_short(exc)}")
        if isinstance(exc, openai.APIStatusError):
            transient = _is_transient(exc)
            attempts = s.max_attempts if transient else 1
            return CacheEntry(**row, status=FAILED, failure=TRANSIENT if transient else PERMANENT,
                              attempts=before + attempts, error=f"{_short(exc)} after {attempts} attempt(s)")
        return CacheEntry(**row, status=FAILED, failure=TRANSIENT, attempts=before + 1,
                          error=f"unreadable response: {_short(exc)}")

    # -- a batch --------------------------------------------------------------------
    def run_batch(
        self,
        requests: Feed,
        on_result: Callable[[CacheEntry], None],
        cached: int = 0,
        progress: bool = True,
        total: int | None = None,
    ) -> BatchCounts:
        """Send ``requests`` with at most ``concurrency`` in flight; ``on_result`` gets each
        outcome in the calling thread as soon as it arrives (write it to the cache there).

        ``requests`` may be a feed that also yields ``Elsewhere`` (another process has part
        of the work); it is read lazily, in the calling thread, so a feed can claim its
        prompts a chunk at a time. ``total``: how many requests a feed without a length
        holds at most (for the progress bar).

        The first request goes alone when the schema form is not settled, so the whole
        pool does not hit a server with a form it rejects. Pending requests are cancelled
        when the run ends early (a fatal error, the server down, Ctrl-C).
        """
        size = len(requests) if isinstance(requests, Sized) else (total or 0)
        counts = BatchCounts(total=size + cached, cached=cached)
        start = time.perf_counter()
        bar = tqdm(total=counts.total, initial=cached, desc="LLM", unit="req", disable=not progress)
        lines = None if progress else ProgressLines(counts, start)  # no terminal (a flow's log): a line now and then
        streak = 0

        def record(entry: CacheEntry) -> None:
            nonlocal streak
            on_result(entry)
            counts.add(entry.status)
            streak = streak + 1 if entry.status == UNREACHABLE else 0
            bar.update(1)
            bar.set_postfix(cached=counts.cached, sent=counts.sent, failed=counts.failures, refresh=False)
            if lines is not None:
                lines.maybe()
            if streak >= self.settings.abort_after_unreachable:
                raise PngnnError(
                    f"LLM server at {self.settings.base_url} stopped answering ({streak} requests in a row could "
                    "not connect); answers so far are cached: restart the server and rerun to resume"
                )

        def pull(queue: Iterator[Request | Elsewhere]) -> Request | Elsewhere | None:
            """The next request to send; an ``Elsewhere(wait=True)`` while the rest is claimed
            by another process; None at the end. Prompts answered elsewhere count as shared."""
            for item in queue:
                if isinstance(item, Request):
                    return item
                counts.shared += item.answered
                bar.update(item.answered)
                if item.wait:
                    return item
            return None

        try:
            self._run(iter(requests), pull, record)
        finally:
            bar.close()
            counts.seconds = time.perf_counter() - start
        return counts

    def _run(
        self,
        queue: Iterator[Request | Elsewhere],
        pull: Callable[[Iterator[Request | Elsewhere]], Request | Elsewhere | None],
        record: Callable[[CacheEntry], None],
    ) -> None:
        """The batch loop: keep at most ``concurrency`` requests submitted (cancellation
        stays cheap), read the feed again as each finishes, pause when it says wait and
        nothing is in flight."""
        if not self._pinned:
            first = pull(queue)
            while isinstance(first, Elsewhere):
                time.sleep(self.poll_s)
                first = pull(queue)
            if first is None:
                return
            record(self.process(first))
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="llm")
        try:
            inflight: set[Future[CacheEntry]] = set()
            ended = False
            while True:
                while not ended and len(inflight) < self.settings.concurrency:
                    item = pull(queue)
                    if isinstance(item, Elsewhere):
                        break
                    if item is None:
                        ended = True
                    else:
                        inflight.add(pool.submit(self.process, item))
                if not inflight:
                    if ended:
                        return
                    time.sleep(self.poll_s)
                    continue
                done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    record(future.result())
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
