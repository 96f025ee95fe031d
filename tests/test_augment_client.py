"""The LLM client against FaultLLMServer (a scripted test double): every retry and
failure path and its class, Retry-After, the schema-form fallback, preflight errors, the
API key, concurrency."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator

import pytest
from fault_llm_server import (
    FaultLLMServer,
    Script,
    answer,
    bad_body,
    drop,
    error,
    garbage,
    rate_limit,
    slow,
)

from pngnn.augment.client import LLMClient, Request, capped_wait, retry_after_seconds
from pngnn.augment.prompts import messages
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "timeout": 5.0}


@pytest.fixture
def srv() -> Iterator[FaultLLMServer]:
    with FaultLLMServer() as server:
        yield server


def settings(server: FaultLLMServer, **kw) -> LLMSettings:
    return LLMSettings(base_url=server.base_url, model="fault-model", **{"schema_mode": "json_object", **FAST, **kw})


def requests(n: int, candidates: int = 10) -> list[Request]:
    return [Request(f"key{i}", messages(f"question {i}"), candidates, "v1") for i in range(n)]


def run_one(server: FaultLLMServer, **kw):
    out = []
    counts = LLMClient(settings(server, **kw)).run_batch(requests(1), out.append, progress=False)
    assert counts.sent == 1 and len(out) == 1
    return out[0]


def test_valid_answer_is_parsed_with_tokens_and_latency(srv: FaultLLMServer) -> None:
    srv.push(answer(3, 7))
    entry = run_one(srv)
    assert (entry.status, entry.like_idx, entry.dislike_idx, entry.attempts) == ("ok", 3, 7, 1)
    assert (entry.prompt_tokens, entry.completion_tokens) == (100, 12)
    assert entry.latency_s is not None and entry.latency_s > 0
    body = srv.chat_requests()[0].body
    assert body["response_format"]["type"] == "json_object"
    assert body["response_format"]["schema"]["properties"]["like"]["enum"] == list(range(1, 11))
    assert body["temperature"] == 0.0 and body["seed"] == 0


def test_429_waits_for_retry_after(srv: FaultLLMServer) -> None:
    srv.push(rate_limit(1), answer(2, 5))
    entry = run_one(srv)
    assert (entry.status, entry.attempts, entry.like_idx) == ("ok", 2, 2)
    first, second = srv.chat_requests()
    assert second.start - first.end >= 0.95  # backoff alone would be ~0.01 s


def test_429_until_attempts_run_out_is_recorded(srv: FaultLLMServer) -> None:
    srv.push(*[rate_limit(0.05)] * 3)
    entry = run_one(srv, max_attempts=3)
    assert (entry.status, entry.failure, entry.attempts) == ("failed", "transient", 3)
    assert "HTTP 429" in entry.error
    assert len(srv.chat_requests()) == 3


def recording_sleep(waits: list[float]):
    """A TEST DOUBLE for ``time.sleep``: records each wait the client asks for instead of
    sleeping, so a wait of an hour can be checked without taking one."""
    return waits.append


@pytest.mark.parametrize("header", ["inf", "1e9", "3600", "-5", "nan", "1e400", "soon",
                                    "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_every_retry_after_wait_is_capped(srv: FaultLLMServer, header: str) -> None:
    srv.push(rate_limit(header), rate_limit(header), answer(2, 5))
    waits: list[float] = []
    client = LLMClient(settings(srv, max_retry_after_s=120.0, backoff_max_s=30.0), sleep=recording_sleep(waits))
    out = []
    client.run_batch(requests(1), out.append, progress=False)
    assert (out[0].status, out[0].attempts) == ("ok", 3)
    assert len(waits) == 2 and all(0 <= w <= 120.0 for w in waits), waits
    if header in ("1e9", "3600", "Fri, 31 Dec 9999 23:59:59 GMT"):  # honoured up to the cap, jitter included
        assert all(w >= 120.0 / 1.1 for w in waits), waits


def test_a_huge_retry_after_waits_only_the_cap_in_real_time(srv: FaultLLMServer) -> None:
    srv.push(rate_limit("3600"), rate_limit("inf"), answer(2, 5))
    entry = run_one(srv, max_retry_after_s=0.3)
    assert (entry.status, entry.attempts) == ("ok", 3)
    first, second, third = srv.chat_requests()
    assert 0.3 / 1.1 - 0.02 <= second.start - first.end <= 0.3 + 0.5  # 3600 s asked, the cap waited
    assert third.start - second.end <= 0.3 + 0.5  # inf is no wait at all: the client's own backoff


def test_capped_wait_never_exceeds_the_cap() -> None:
    for after in (0.0, 0.5, 100.0, 119.9, 120.0, 3600.0, 1e9):
        for _ in range(200):
            wait = capped_wait(after, 120.0)
            assert 0 <= wait <= 120.0 and math.isfinite(wait)
            assert wait >= min(after, 120.0 / 1.1)


def test_5xx_is_retried_with_backoff(srv: FaultLLMServer) -> None:
    srv.push(error(500), error(503), answer(4, 1))
    entry = run_one(srv)
    assert (entry.status, entry.attempts) == ("ok", 3)
    srv.push(*[error(502)] * 4)
    entry = run_one(srv, max_attempts=4)
    assert entry.status == "failed" and "HTTP 502" in entry.error and entry.attempts == 4
    assert entry.failure == "transient"


def test_4xx_is_not_retried(srv: FaultLLMServer) -> None:
    srv.push(error(400), answer())
    entry = run_one(srv)
    assert entry.status == "failed" and "HTTP 400" in entry.error and entry.attempts == 1
    assert entry.failure == "permanent"
    assert len(srv.chat_requests()) == 1


def test_slower_than_timeout_is_retried_then_recorded(srv: FaultLLMServer) -> None:
    srv.push(slow(1.0), answer(6, 2))
    entry = run_one(srv, timeout=0.25)
    assert (entry.status, entry.attempts, entry.like_idx) == ("ok", 2, 6)
    srv.push(slow(1.0), slow(1.0))
    entry = run_one(srv, timeout=0.25, max_attempts=2)
    assert entry.status == "failed" and entry.error.startswith("timeout after 2 attempt(s)")
    assert entry.failure == "transient"


def test_dropped_connection_is_retried(srv: FaultLLMServer) -> None:
    srv.push(drop(), answer(1, 9))
    entry = run_one(srv)
    assert (entry.status, entry.attempts, entry.dislike_idx) == ("ok", 2, 9)
    srv.push(drop(), drop())
    entry = run_one(srv, max_attempts=2)
    assert entry.status == "unreachable" and "connection failed" in entry.error
    assert entry.failure == "transient"


@pytest.mark.parametrize(
    ("content", "status", "kind"),
    [
        ("I think they would enjoy the second one!", "invalid", "not_json"),
        ('{"like": 11, "dislike": 2}', "invalid", "out_of_range"),
        ('{"like": 4, "dislike": 4}', "invalid", "same_index"),
        ('```json\n{"like": 4, "dislike": 8}\n```', "ok", None),
    ],
)
def test_model_text_is_parsed_leniently_and_never_retried(srv: FaultLLMServer, content: str, status: str,
                                                          kind: str | None) -> None:
    srv.push(garbage(content), answer())
    entry = run_one(srv)
    assert entry.status == status and entry.raw_answer == content and entry.attempts == 1
    assert (entry.error or "").startswith(kind or "")
    assert entry.failure == (None if status == "ok" else "permanent")
    assert len(srv.chat_requests()) == 1  # an unusable answer is recorded, not re-asked


def test_parse_attempts_ask_an_unusable_answer_again(srv: FaultLLMServer) -> None:
    srv.push(garbage("hmm"), answer(3, 1))
    entry = run_one(srv, parse_attempts=2)
    assert (entry.status, entry.attempts, entry.like_idx) == ("ok", 2, 3)
    srv.push(garbage("hmm"), garbage("still no"))
    entry = run_one(srv, parse_attempts=2)
    assert (entry.status, entry.failure, entry.attempts, entry.raw_answer) == ("invalid", "permanent", 2, "still no")
    with pytest.raises(PngnnError, match=r"LLM setting parse_attempts=0: input should be greater than"):
        LLMSettings(parse_attempts=0)


def test_body_that_is_not_json_is_a_failure(srv: FaultLLMServer) -> None:
    srv.push(bad_body())
    entry = run_one(srv)
    assert entry.status == "failed" and entry.error.startswith("unreadable response")
    assert entry.failure == "transient"  # a proxy's error page: the next run asks again


def forms(server: FaultLLMServer) -> list[str | None]:
    return [r.body.get("response_format", {}).get("type") for r in server.chat_requests()]


def test_auto_schema_falls_back_to_json_object_like_llama_cpp() -> None:
    """llama-cpp-python answers 500 naming the form: retried like any 5xx, then, as every
    retry got the same, the next form."""
    with FaultLLMServer(Script(reject_json_schema=True)) as server:
        client = LLMClient(settings(server, schema_mode="auto", concurrency=4, max_attempts=3))
        out = []
        counts = client.run_batch(requests(6), out.append, progress=False)
        assert counts.ok == 6 and client.schema_mode == "json_object"
        assert forms(server) == ["json_schema"] * 3 + ["json_object"] * 6  # one probe, then the form that worked
        assert out[0].attempts == 4


def test_auto_schema_falls_back_at_once_on_a_400_naming_the_form() -> None:
    with FaultLLMServer(Script(reject_json_schema=True, reject_status=400)) as server:
        client = LLMClient(settings(server, schema_mode="auto", concurrency=4))
        counts = client.run_batch(requests(6), lambda e: None, progress=False)
        assert counts.ok == 6 and client.schema_mode == "json_object"
        assert forms(server) == ["json_schema"] + ["json_object"] * 6


def test_transient_failures_keep_the_structured_format(srv: FaultLLMServer) -> None:
    """Two 500s (then a timeout) on the first request: retried in the same form; structured
    output stays on for the whole batch."""
    srv.push(error(500), error(500), answer(2, 3))
    client = LLMClient(settings(srv, schema_mode="auto", concurrency=2))
    out = []
    counts = client.run_batch(requests(5), out.append, progress=False)
    assert counts.ok == 5 and client.schema_mode == "json_schema" and out[0].attempts == 3
    assert forms(srv) == ["json_schema"] * 7
    srv.push(slow(1.0), answer())
    client = LLMClient(settings(srv, schema_mode="auto", timeout=0.25))
    client.run_batch(requests(3), lambda e: None, progress=False)
    assert client.schema_mode == "json_schema" and forms(srv)[7:] == ["json_schema"] * 4


def test_a_4xx_that_does_not_name_the_form_is_the_prompt_s_failure(srv: FaultLLMServer) -> None:
    srv.push(error(400, "This model's maximum context length is 2048 tokens"), answer())
    client = LLMClient(settings(srv, schema_mode="auto", concurrency=1))
    out = []
    client.run_batch(requests(2), out.append, progress=False)
    assert [(e.status, e.failure) for e in out] == [("failed", "permanent"), ("ok", None)]
    assert forms(srv) == ["json_schema", "json_schema"] and client.schema_mode == "json_schema"


def test_auto_schema_keeps_json_schema_where_supported(srv: FaultLLMServer) -> None:
    client = LLMClient(settings(srv, schema_mode="auto"))
    counts = client.run_batch(requests(3), lambda e: None, progress=False)
    assert counts.ok == 3 and client.schema_mode == "json_schema"
    body = srv.chat_requests()[0].body
    assert body["response_format"]["json_schema"]["schema"]["properties"]["dislike"]["enum"] == list(range(1, 11))
    assert all(r.body["response_format"]["type"] == "json_schema" for r in srv.chat_requests())


def test_auto_schema_ends_without_response_format_when_both_forms_fail(srv: FaultLLMServer) -> None:
    srv.push(error(422, "response_format type 'json_schema' is not supported"),
             error(400, "unknown response_format.type json_object"), answer(2, 3))
    client = LLMClient(settings(srv, schema_mode="auto"))
    out = []
    client.run_batch(requests(1), out.append, progress=False)
    assert out[0].status == "ok" and client.schema_mode == "none"
    assert "response_format" not in srv.chat_requests()[-1].body


def test_server_down_names_base_url() -> None:
    with FaultLLMServer() as server:
        url = server.base_url
    client = LLMClient(LLMSettings(base_url=url, model="fault-model", timeout=2))
    with pytest.raises(PngnnError, match=f"LLM server at {url} is unreachable") as info:
        client.check()
    assert "\n" not in str(info.value)


def test_server_dying_mid_batch_stops_the_run(srv: FaultLLMServer) -> None:
    srv.push(answer(), answer())
    srv.script.default = drop()
    out = []
    client = LLMClient(settings(srv, max_attempts=2, concurrency=1, abort_after_unreachable=3))
    with pytest.raises(PngnnError, match=r"stopped answering .* rerun to resume"):
        client.run_batch(requests(20), out.append, progress=False)
    assert [e.status for e in out] == ["ok", "ok", "unreachable", "unreachable", "unreachable"]


def test_wrong_model_name_is_reported_with_served_models(srv: FaultLLMServer) -> None:
    client = LLMClient(LLMSettings(base_url=srv.base_url, model="gpt-7"))
    with pytest.raises(PngnnError, match=r"model 'gpt-7' is not served by .*fault-model.*PNGNN_LLM_MODEL"):
        client.check()
    srv.push(error(404))  # a server without /models: the name fails on first use
    with pytest.raises(PngnnError, match="has no model 'fault-model'"):
        LLMClient(settings(srv)).run_batch(requests(3), lambda e: None, progress=False)


def test_missing_api_key_for_remote_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PNGNN_LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(PngnnError, match=r"no API key for the remote LLM server https://api\.example\.com/v1"):
        LLMClient(LLMSettings(base_url="https://api.example.com/v1"))
    LLMClient(LLMSettings(base_url="http://localhost:8000/v1"))  # local servers need none


def test_api_key_is_sent_but_never_logged_or_shown(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-test-SECRET-4242"
    monkeypatch.setenv("PNGNN_LLM_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    with FaultLLMServer(Script(api_key=secret)) as server:
        s = settings(server)
        client = LLMClient(s)
        client.check()
        out = []
        client.run_batch(requests(2), out.append, progress=False)
        assert [e.status for e in out] == ["ok", "ok"]
        assert all(r.headers.get("authorization") == f"Bearer {secret}" for r in server.requests)
    assert secret not in caplog.text
    assert secret not in repr(s) and secret not in json.dumps(s.public())
    assert all(secret not in e.request for e in out)
    monkeypatch.setenv("PNGNN_LLM_API_KEY", "sk-wrong-0000")
    with FaultLLMServer(Script(api_key=secret)) as server:
        with pytest.raises(PngnnError, match=r"rejected the API key \(HTTP 401\); set PNGNN_LLM_API_KEY") as info:
            LLMClient(settings(server)).check()
        assert "sk-wrong-0000" not in str(info.value)  # the server echoed it; we do not
        with pytest.raises(PngnnError, match="rejected the API key") as info:  # mid-batch, too
            LLMClient(settings(server)).run_batch(requests(2), lambda e: None, progress=False)
        assert "sk-wrong-0000" not in str(info.value)


def test_concurrency_is_bounded_and_parallel() -> None:
    """What the server saw, not the client's wall time (which a loaded machine stretches): four
    requests in flight at once, never a fifth."""
    with FaultLLMServer(Script(latency=0.3, hold_until_inflight=4, hold_timeout=60)) as server:
        out = []
        counts = LLMClient(settings(server, concurrency=4)).run_batch(requests(12), out.append, progress=False)
        assert counts.ok == 12 and len({e.key for e in out}) == 12
        assert server.max_inflight == 4, f"at most {server.max_inflight} requests were in flight at once"


def test_progress_bar_shows_cached_sent_failed(srv: FaultLLMServer, capsys: pytest.CaptureFixture) -> None:
    srv.push(answer(), garbage("no"), answer())
    LLMClient(settings(srv, concurrency=1)).run_batch(requests(3), lambda e: None, cached=5, progress=True)
    err = capsys.readouterr().err
    assert "8/8" in err and "cached=5" in err and "sent=3" in err and "failed=1" in err


def test_retry_after_header_forms() -> None:
    class Resp:
        def __init__(self, headers):
            self.headers = headers

    class Exc(Exception):
        def __init__(self, headers):
            self.response = Resp(headers)

    assert retry_after_seconds(Exc({"retry-after": "3"})) == 3.0
    assert retry_after_seconds(Exc({"retry-after": "1e9"})) == 1e9  # finite: the caller caps it
    assert retry_after_seconds(Exc({"retry-after-ms": "250"})) == 0.25
    in_two = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    assert 0.5 < retry_after_seconds(Exc({"retry-after": in_two})) <= 2.0
    assert retry_after_seconds(Exc({"retry-after": "Mon, 01 Jan 2001 00:00:00 GMT"})) == 0.0  # past: now
    for unreadable in ("inf", "-inf", "nan", "-1", "1e400", "soon", ""):
        assert retry_after_seconds(Exc({"retry-after": unreadable})) is None, unreadable
    assert retry_after_seconds(Exc({"retry-after-ms": "inf", "retry-after": "2"})) == 2.0
    assert retry_after_seconds(Exc({})) is None
    assert retry_after_seconds(ValueError()) is None


def test_without_a_terminal_the_llm_step_logs_progress_lines():
    """A flow's log has no progress bar: every ``every`` seconds a line says how far the step is."""
    from pngnn.augment.client import BatchCounts, ProgressLines

    counts = BatchCounts(total=600, cached=100)
    lines = ProgressLines(counts, start=0.0, every=30.0)
    for _ in range(48):
        counts.add("ok")
    counts.add("invalid")
    counts.add("failed")  # 50 sent in 25 s: 2 requests/s
    assert lines.maybe(now=25.0) is None  # not yet 30 s
    assert lines.maybe(now=25.0 + 5.0) == ("LLM: 150 of 600 prompts done (48 answered, 2 failed, 100 cached, 0 by "
                                           "another run), 1.67 requests/s, about 4 min left")
    assert lines.maybe(now=40.0) is None  # the next one 30 s after


def test_run_batch_logs_its_progress_lines_when_it_shows_no_bar(caplog, monkeypatch):
    from pngnn.augment import client as client_module

    monkeypatch.setattr(client_module, "PROGRESS_EVERY_S", 0.0)  # a line per answer, to see them
    with FaultLLMServer() as server, caplog.at_level("INFO", logger="pngnn.augment.client"):
        client = LLMClient(settings(server))
        client.run_batch(requests(3), lambda entry: None, progress=False)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("LLM: ")]
    assert [s.split(" prompts done")[0] for s in said] == ["LLM: 1 of 3", "LLM: 2 of 3", "LLM: 3 of 3"], said
