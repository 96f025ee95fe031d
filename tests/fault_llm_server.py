"""FaultLLMServer: a TEST DOUBLE speaking the OpenAI chat-completions HTTP API.

It stands in for an LLM server so that every retry and failure path of the client can be
exercised deterministically: each request takes the next scripted action (then the
default action), e.g. 429 with Retry-After, a 500, an answer slower than the client's
timeout, a dropped connection, garbage text, or a valid JSON answer. It is threaded
(``ThreadingHTTPServer``), so requests run concurrently: the concurrency benchmark uses a
fixed latency and measures how many requests per second a client achieves. It runs on
127.0.0.1 on a free port and records every request it saw, so a test can count exactly
how many requests reached it (from any number of client processes).

This is not a model and not the real server: the end-to-end test with the real llama.cpp
server is ``tests/test_augment_local_llm.py``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Action:
    """What the server does with one request.

    kind: 'answer' (200, content = ``content`` or the default like/dislike JSON),
    'rate_limit' (429 with Retry-After: ``retry_after``), 'error' (HTTP ``status``, the
    error message ``content`` or a generic one),
    'slow' (sleep ``delay`` seconds, then answer), 'drop' (close the socket without a
    response), 'garbage' (200 whose message content is ``content``, e.g. prose),
    'bad_body' (200 with a body that is not JSON).
    """

    kind: str
    content: str | None = None
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0


def answer(like: int | None = None, dislike: int | None = None) -> Action:
    """A 200 answer: {"like": like, "dislike": dislike}, or (no numbers) the script's
    ``responder`` / {"like": 1, "dislike": 2}."""
    if like is None or dislike is None:
        return Action("answer")
    return Action("answer", content=json.dumps({"like": like, "dislike": dislike}))


def rate_limit(retry_after: float | str = 1) -> Action:
    """429 with ``Retry-After: <retry_after>`` as given (any text: "inf", "1e9", a date)."""
    return Action("rate_limit", status=429, retry_after=str(retry_after))


def error(status: int = 500, message: str | None = None) -> Action:
    """HTTP ``status`` with an OpenAI-style error body saying ``message``."""
    return Action("error", status=status, content=message)


def slow(delay: float, like: int = 1, dislike: int = 2) -> Action:
    return Action("slow", content=json.dumps({"like": like, "dislike": dislike}), delay=delay)


def drop() -> Action:
    return Action("drop")


def garbage(text: str = "I think they would enjoy the second one!") -> Action:
    return Action("garbage", content=text)


def bad_body() -> Action:
    return Action("bad_body")


@dataclass
class Seen:
    """One request as received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]  # names lower-cased
    start: float
    end: float = 0.0
    action: str = ""


@dataclass
class Script:
    """Per-request behaviour: scripted actions first, then ``default``; ``latency`` is
    added to every answer; ``reject_json_schema`` answers ``reject_status`` (500, as
    llama-cpp-python does) naming the form to ``response_format.type == 'json_schema'``
    (before taking an action); ``api_key`` (if set) is required as a Bearer token;
    ``models`` is what /v1/models lists; ``responder`` computes the content of default
    answers from the request body (e.g. a deterministic "model" for self-consistency
    tests); ``hold_until_inflight`` > 0 holds every request until that many were in
    flight at once (or ``hold_timeout`` passed), so a test can make sure that clients
    (e.g. two processes) really asked at the same time."""

    actions: deque[Action] = field(default_factory=deque)
    default: Action = field(default_factory=answer)
    latency: float = 0.0
    reject_json_schema: bool = False
    api_key: str | None = None
    models: tuple[str, ...] = ("fault-model",)
    responder: Callable[[dict[str, Any]], str] | None = None
    reject_status: int = 500
    hold_until_inflight: int = 0
    hold_timeout: float = 60.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # concurrent clients must not be refused at accept


class FaultLLMServer:
    """``with FaultLLMServer() as srv: srv.push(rate_limit(1), answer(3, 4)); srv.base_url``."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._inflight = 0
        self.max_inflight = 0
        self._gate = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    self.wfile.write(body)

            def _authorized(self) -> bool:
                key = server.script.api_key
                if key is None or self.headers.get("Authorization") == f"Bearer {key}":
                    return True
                sent = self.headers.get("Authorization", "").removeprefix("Bearer ")
                message = f"Incorrect API key provided: {sent}"  # real servers echo (part of) the key
                self._json(401, {"error": {"message": message, "type": "invalid_request_error",
                                           "code": "invalid_api_key"}})
                return False

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path.rstrip("/").endswith("/models"):
                    data = [{"id": m, "object": "model", "owned_by": "fault", "created": 0}
                            for m in server.script.models]
                    self._json(200, {"object": "list", "data": data})
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                seen = Seen(self.path, body, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
                with server._lock:
                    server.requests.append(seen)
                    server._inflight += 1
                    server.max_inflight = max(server.max_inflight, server._inflight)
                    if server.max_inflight >= server.script.hold_until_inflight:
                        server._gate.set()
                server._gate.wait(server.script.hold_timeout)
                try:
                    if not self._authorized():
                        seen.action = "unauthorized"
                        return
                    if not self.path.rstrip("/").endswith("/chat/completions"):
                        seen.action = "no_route"
                        self._json(404, {"error": {"message": f"no route {self.path}"}})
                        return
                    fmt = (body.get("response_format") or {}).get("type")
                    if server.script.reject_json_schema and fmt == "json_schema":
                        seen.action = "reject_json_schema"  # like llama.cpp; consumes no scripted action
                        self._json(server.script.reject_status, {"error": {
                            "message": "response_format.type: Input should be 'text' or 'json_object', got "
                                       "'json_schema'", "type": "invalid_request_error"}})
                        return
                    with server._lock:
                        action = server.script.actions.popleft() if server.script.actions else server.script.default
                    seen.action = action.kind
                    self._act(action, body)
                finally:
                    seen.end = time.monotonic()
                    with server._lock:
                        server._inflight -= 1

            def _act(self, action: Action, body: dict[str, Any]) -> None:
                if action.kind == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action.kind == "rate_limit":
                    self._json(429, {"error": {"message": "Rate limit reached", "type": "rate_limit"}},
                               {"Retry-After": action.retry_after or "1"})
                    return
                if action.kind == "error":
                    message = action.content or f"scripted error {action.status}"
                    self._json(action.status, {"error": {"message": message}})
                    return
                if action.kind == "bad_body":
                    payload = b"<html>502 proxy error</html> not json"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                time.sleep(action.delay + server.script.latency)
                if action.content is not None:
                    content = action.content
                elif server.script.responder is not None:
                    content = server.script.responder(body)
                else:
                    content = json.dumps({"like": 1, "dislike": 2})
                self._json(200, {
                    "id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fault-model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112},
                })

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fault-llm", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def push(self, *actions: Action) -> None:
        """Script the next requests, in arrival order."""
        with self._lock:
            self.script.actions.extend(actions)

    def chat_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    def start(self) -> FaultLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
