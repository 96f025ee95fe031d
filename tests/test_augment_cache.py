"""The answer cache: keys, statuses and failure classes, write-as-you-go, resume after a
crash, no re-asking, and one payer per prompt across processes (claims)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fault_llm_server import FaultLLMServer, Script, answer, drop, error, garbage, rate_limit

from pngnn.augment import augment
from pngnn.augment.cache import CacheEntry, LLMCache, cache_key
from pngnn.augment.candidates import candidates_frame, save_candidates, select_users
from pngnn.augment.prompts import PROMPT_VERSION, messages
from pngnn.core.settings import LLMSettings
from pngnn.data.store import Store

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "timeout": 5.0, "schema_mode": "json_object"}


def settings(server: FaultLLMServer, **kw) -> LLMSettings:
    return LLMSettings(base_url=server.base_url, model="fault-model", **{**FAST, **kw})


def test_key_covers_model_version_messages_and_params() -> None:
    chat = messages("Misérables, Les (1995)")
    params = {"temperature": 0.0, "max_tokens": 64}
    key = cache_key("m", "v1", chat, params)
    assert len(key) == 64 and key == cache_key("m", "v1", chat, {"max_tokens": 64, "temperature": 0.0})
    assert len({key, cache_key("m2", "v1", chat, params), cache_key("m", "v2", chat, params),
                cache_key("m", "v1", messages("other"), params),
                cache_key("m", "v1", chat, {**params, "temperature": 0.7})}) == 5


def test_statuses_decide_what_is_sent_again(tmp_path: Path) -> None:
    with Store(tmp_path / "c.duckdb") as store:
        cache = LLMCache(store)
        for key, status, failure in [("a", "ok", None), ("b", "invalid", "permanent"), ("c", "failed", "transient"),
                                     ("d", "unreachable", "transient"), ("f", "failed", "permanent")]:
            cache.put(CacheEntry(key=key, model="m", prompt_version="v1", request="{}", status=status,
                                 failure=failure))
        keys = ["a", "b", "c", "d", "e", "f"]
        assert cache.to_send(keys) == {"c", "d", "e"}  # transient failures are asked again by default
        assert cache.to_send(keys, retry_failed=True) == {"b", "c", "d", "e", "f"}  # never 'ok'
        cache.put(CacheEntry(key="d", model="m", prompt_version="v1", request="{}", status="ok", like_idx=1,
                             dislike_idx=2, latency_s=0.5, prompt_tokens=10, completion_tokens=3))
        row = cache.get("d")
        assert (row["status"], row["like_idx"], row["prompt_tokens"], row["failure"]) == ("ok", 1, 10, None)
        assert row["created"]
        assert cache.counts() == {"ok": 2, "invalid": 1, "failed": 2}
        assert CacheEntry(key="g", model="m", prompt_version="v1", request="{}", status="invalid").failure == \
            "permanent"  # a row without a class gets the one its status implies


OLD_CACHE = """
CREATE TABLE llm_cache (
    key VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, prompt_version VARCHAR NOT NULL, request VARCHAR NOT NULL,
    raw_answer VARCHAR, status VARCHAR NOT NULL, like_idx INTEGER, dislike_idx INTEGER, error VARCHAR,
    latency_s DOUBLE, attempts INTEGER, prompt_tokens INTEGER, completion_tokens INTEGER, created TIMESTAMP NOT NULL
);
INSERT INTO llm_cache (key, model, prompt_version, request, status, error, created) VALUES
    ('ok', 'm', 'v1', '{}', 'ok', NULL, now()),
    ('bad', 'm', 'v1', '{}', 'invalid', 'not_json: ...', now()),
    ('r429', 'm', 'v1', '{}', 'failed', 'HTTP 429: Rate limit reached after 5 attempt(s)', now()),
    ('r500', 'm', 'v1', '{}', 'failed', 'HTTP 500: boom after 5 attempt(s)', now()),
    ('r400', 'm', 'v1', '{}', 'failed', 'HTTP 400: context too long after 1 attempt(s)', now()),
    ('slow', 'm', 'v1', '{}', 'failed', 'timeout after 5 attempt(s): APITimeoutError', now()),
    ('down', 'm', 'v1', '{}', 'unreachable', 'connection failed after 5 attempt(s)', now());
"""


def test_a_cache_from_before_the_failure_classes_gets_them_on_open(tmp_path: Path) -> None:
    """The 'failed' rows an older version stored for good are classed by their error when
    the file is opened, so a rerun asks the 429s, 5xx and timeouts again."""
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(OLD_CACHE)
    con.close()
    with Store(path) as store:
        classes = dict(store.query_sql("SELECT key, failure FROM llm_cache").iter_rows())
        assert classes == {"ok": None, "bad": "permanent", "r429": "transient", "r500": "transient",
                           "r400": "permanent", "slow": "transient", "down": "transient"}
        assert LLMCache(store).to_send(list(classes)) == {"r429", "r500", "slow", "down"}
    with Store(path) as store:  # opening again changes nothing
        assert dict(store.query_sql("SELECT key, failure FROM llm_cache").iter_rows()) == classes


def test_augment_caches_every_answer_and_rerun_sends_nothing(ml100k_db_copy: Path, ml100k_split,
                                                            ml100k_lightgcn) -> None:
    with FaultLLMServer() as server, Store(ml100k_db_copy) as store:
        server.push(answer(3, 4), garbage("dunno"))
        first = augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server), sample=12, split=ml100k_split,
                        progress=False)
        assert (first.users, first.prompts, first.cached, first.sent) == (12, 12, 0, 12)
        assert (first.ok, first.invalid) == (11, 1)
        rows = store.query_sql("SELECT * FROM llm_cache ORDER BY created")
        assert rows.height == 12 and set(rows["status"]) == {"ok", "invalid"}
        assert rows["request"].str.contains('"messages"').all() and rows["latency_s"].is_not_null().all()
        assert rows.filter(rows["status"] == "ok")["prompt_tokens"].to_list() == [100] * 11
        assert rows.filter(rows["status"] == "invalid")["raw_answer"].to_list() == ["dunno"]
        links = store.query_sql("SELECT * FROM llm_prompts")
        assert links.height == 12 and set(links["key"]) == set(rows["key"])
        assert links["items"].list.len().to_list() == [10] * 12
        assert len(server.chat_requests()) == 12
    # the server is gone: a cached rerun must not need it
    with Store(ml100k_db_copy) as store:
        again = augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server), sample=12, split=ml100k_split,
                        progress=False)
        assert (again.cached, again.sent, again.prompts) == (12, 0, 12)
        # resume with the stored candidates (no model) gives the same prompts
        resumed = augment(store, "ml-100k", 1, None, settings(server), sample=12, progress=False)
        assert (resumed.cached, resumed.sent) == (12, 0)


def test_invalid_answers_are_asked_again_only_when_asked(ml100k_db_copy: Path, ml100k_split,
                                                         ml100k_lightgcn) -> None:
    with FaultLLMServer() as server, Store(ml100k_db_copy) as store:
        server.push(garbage("??"), garbage("??"))
        run = augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server, concurrency=1), users=[1, 2, 3],
                      split=ml100k_split, progress=False)
        assert (run.invalid, run.ok, run.usable, run.failed_permanent, run.failed_transient) == (2, 1, 1, 2, 0)
        again = augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server), users=[1, 2, 3],
                        split=ml100k_split, progress=False)
        assert again.sent == 0 and again.cached == 3 and again.failed_permanent == 2
        retried = augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server, retry_failed=True),
                          users=[1, 2, 3], split=ml100k_split, progress=False)
        assert (retried.sent, retried.ok, retried.usable, retried.failed_permanent) == (2, 2, 3, 0)
        assert LLMCache(store).counts() == {"ok": 3}


def test_transient_failures_are_asked_again_by_the_next_run(ml100k_db_copy: Path, ml100k_split,
                                                            ml100k_lightgcn) -> None:
    with FaultLLMServer() as server, Store(ml100k_db_copy) as store:
        server.push(*[rate_limit(0)] * 2, *[error(503)] * 2)  # the first two prompts fail, after 2 attempts each
        run = augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server, concurrency=1, max_attempts=2),
                      users=[1, 2, 3, 4], split=ml100k_split, progress=False)
        assert (run.failed, run.ok, run.failed_transient, run.failed_permanent) == (2, 2, 2, 0)
        failed = [r.body["messages"] for r in server.chat_requests()[:4:2]]
        before = len(server.chat_requests())
        again = augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server), users=[1, 2, 3, 4],
                        split=ml100k_split, progress=False)
        assert (again.cached, again.sent, again.ok, again.usable, again.failed_transient) == (2, 2, 2, 4, 0)
        assert sorted(map(str, (r.body["messages"] for r in server.chat_requests()[before:]))) == \
            sorted(map(str, failed))  # exactly the failed prompts


def test_server_down_mid_run_then_resume(ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn) -> None:
    with FaultLLMServer(Script(default=drop())) as server, Store(ml100k_db_copy) as store:
        server.push(*[answer()] * 5)
        with pytest.raises(Exception, match="stopped answering"):
            augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server, concurrency=1, max_attempts=2),
                    sample=12, split=ml100k_split, progress=False)
        assert LLMCache(store).counts() == {"ok": 5, "unreachable": 3}
    with FaultLLMServer() as server, Store(ml100k_db_copy) as store:  # back up, on another port
        run = augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server), sample=12, split=ml100k_split,
                      progress=False)
        assert (run.cached, run.sent, run.ok) == (5, 7, 7)
        assert LLMCache(store).counts() == {"ok": 12}


CHILD = textwrap.dedent(
    """
    import sys
    from pngnn.augment import augment
    from pngnn.core.settings import LLMSettings
    from pngnn.data.store import Store
    s = LLMSettings(base_url=sys.argv[2], model="fault-model", schema_mode="json_object", concurrency=2)
    with Store(sys.argv[1]) as store:
        augment(store, "ml-100k", 1, None, s, sample=40, progress=False)
    """
)


def test_a_killed_run_loses_at_most_the_requests_in_flight(ml100k_db_copy: Path, ml100k_split,
                                                           ml100k_lightgcn) -> None:
    with Store(ml100k_db_copy) as store:
        chosen = select_users(store, "ml-100k", sample=40)
        save_candidates(store, "ml-100k", 1, candidates_frame(store, ml100k_split, ml100k_lightgcn, chosen))
    with FaultLLMServer(Script(latency=0.15)) as server:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(ml100k_db_copy), server.base_url],
                                 env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
        deadline = time.monotonic() + 60
        while sum(r.end > 0 for r in server.chat_requests()) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)  # a crash: no cleanup, no flush
        child.wait()
        answered = sum(r.end > 0 for r in server.chat_requests())
        assert 10 <= answered < 40
    with Store(ml100k_db_copy) as store:
        stored = store.scalar("SELECT count(*) FROM llm_cache")
        # Lost: the 2 in flight, +1 being written, + the answers of the last 0.25 s that wait to be
        # written together (0.15 s latency, 2 workers: at most 4).
        assert answered - 2 - 1 - 4 <= stored <= answered
        with FaultLLMServer() as server:
            run = augment(store, "ml-100k", 1, None, settings(server), sample=40, progress=False)
        assert (run.cached, run.sent) == (stored, 40 - stored)
        assert store.scalar("SELECT count(*) FROM llm_cache WHERE status = 'ok'") == 40
        # The killed run's claims did not hold its prompts back: its process is gone.
        assert run.seconds < 30 and store.scalar("SELECT count(*) FROM llm_claims") == 0
        assert PROMPT_VERSION in set(store.query_sql("SELECT prompt_version FROM llm_cache")["prompt_version"])


def test_augment_step_resumes_without_training_or_server(ml100k_db_copy: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from pngnn.augment import augment_step
    from pngnn.core.config import TrainConfig
    from pngnn.core.settings import Settings

    conf = Settings(data_dir=tmp_path, db_path=ml100k_db_copy, mlflow_uri=f"sqlite:///{tmp_path}/m.db")
    quick = TrainConfig(epochs=1, batch_size=4096, n_neg=2, l2=1e-3)
    with FaultLLMServer() as server:
        llm = LLMSettings(model="fault-model", base_url=server.base_url, users=6, schema_mode="json_object")
        first = augment_step(conf, "ml-100k", 1, llm, candidate_config=quick, progress=False)
        assert (first["sent"], first["ok"], first["users"]) == (6, 6, 6)
        assert first["positive_edges"] + first["negative_edges"] + first["dropped_rated"] == 12
        assert 0 <= first["like_precision"] <= 1 and first["prompt_version"] == PROMPT_VERSION
    with Store(ml100k_db_copy) as store:  # the default order: the split's sparsest users were asked
        asked = set(store.query_sql("SELECT DISTINCT user_id FROM llm_prompts")["user_id"].to_list())
        assert asked == set(select_users(store, "ml-100k", sample=6, by="sparsest", seed=1)["user_id"].to_list())
    import pngnn.training.train

    def no_training(*a, **k):
        raise AssertionError("a cached rerun must not train the candidate model")

    monkeypatch.setattr(pngnn.training.train, "train_lightgcn", no_training)
    # base_url None would start the local server on first use: a cached rerun never uses it
    again = augment_step(conf, "ml-100k", 1, LLMSettings(model="fault-model", base_url=None, users=6), progress=False)
    assert (again["sent"], again["cached"]) == (0, 6)
    assert again["positive_edges"] == first["positive_edges"]
    assert not (ml100k_db_copy.parent / "llama-server.log").exists()


# A bystander opens the file as every pngnn process does (read-write, so it needs the file's lock;
# Store's open retries while a write of the batch holds it), not with a single bare attempt.
LOCKER = textwrap.dedent(
    """
    import sys
    from pngnn.data.store import Store
    with Store(sys.argv[1], wait_s=60) as store:
        print(store.scalar("SELECT count(*) FROM llm_cache"))
    """
)


def test_other_processes_can_use_the_database_during_a_batch(ml100k_db_copy: Path, ml100k_split,
                                                            ml100k_lightgcn) -> None:
    """A long LLM batch must not lock a training run (another process) out of the DuckDB file."""
    import threading

    # 1 s a request: the batch lasts ~10 s, so a slow machine's bystander still gets in before its end
    with FaultLLMServer(Script(latency=1.0)) as server:
        result = {}

        def run() -> None:
            with Store(ml100k_db_copy) as store:
                result["summary"] = augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server, concurrency=1),
                                            sample=10, split=ml100k_split, progress=False)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 60
        while sum(r.end > 0 for r in server.chat_requests()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        seen = subprocess.run([sys.executable, "-c", LOCKER, str(ml100k_db_copy)], capture_output=True, text=True,
                              timeout=60)
        answered_then = sum(r.end > 0 for r in server.chat_requests())
        worker.join(timeout=120)
    assert seen.returncode == 0, seen.stderr[-500:]
    assert 3 <= answered_then < 10  # the other process got in mid-batch
    assert 1 <= int(seen.stdout) <= answered_then  # and saw the answers written so far
    assert result["summary"].sent == 10
    with Store(ml100k_db_copy) as store:
        assert store.scalar("SELECT count(*) FROM llm_cache WHERE status = 'ok'") == 10


TWIN = textwrap.dedent(
    """
    import json, sys
    from pngnn.augment import augment
    from pngnn.core.settings import LLMSettings
    from pngnn.data.store import Store
    s = LLMSettings(base_url=sys.argv[2], model="fault-model", schema_mode="json_object", concurrency=2,
                    timeout=120)
    with Store(sys.argv[1]) as store:
        print(json.dumps(augment(store, "ml-100k", 1, None, s, sample=40, progress=False).to_dict()))
    """
)


def test_two_runs_at_once_send_each_prompt_once(ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn) -> None:
    """Two augment processes over the same 40 prompts: 40 requests reach the server, no
    prompt twice, and both were asking at the same time (the server held the first
    requests until more were in flight than one process sends)."""
    with Store(ml100k_db_copy) as store:
        chosen = select_users(store, "ml-100k", sample=40)
        save_candidates(store, "ml-100k", 1, candidates_frame(store, ml100k_split, ml100k_lightgcn, chosen))
    with FaultLLMServer(Script(latency=0.05, hold_until_inflight=3, hold_timeout=90)) as server:
        children = [subprocess.Popen([sys.executable, "-c", TWIN, str(ml100k_db_copy), server.base_url],
                                     env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [child.communicate(timeout=300) for child in children]
        assert [c.returncode for c in children] == [0, 0], [err[-2000:] for _, err in outputs]
        summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
        asked = [json.dumps(r.body["messages"]) for r in server.chat_requests()]
        assert len(asked) == 40 and len(set(asked)) == 40
        assert server.max_inflight >= 3
    assert sum(s["sent"] for s in summaries) == 40
    assert all(s["cached"] + s["sent"] + s["shared"] == 40 and s["usable"] == 40 for s in summaries)
    with Store(ml100k_db_copy) as store:
        assert store.scalar("SELECT count(*) FROM llm_cache WHERE status = 'ok'") == 40
        assert store.scalar("SELECT count(*) FROM llm_claims") == 0


def test_a_claim_holds_its_prompt_until_its_lease_expires_or_its_process_is_gone(
        ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn) -> None:
    with FaultLLMServer() as server, Store(ml100k_db_copy) as store:
        augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server), users=[1, 2, 3, 4], split=ml100k_split,
                progress=False)
        keys = store.query_sql("SELECT key FROM llm_prompts WHERE user_id IN (1, 2) ORDER BY user_id")["key"]
        gone = subprocess.Popen(["true"])
        gone.wait()  # a pid that no longer runs
        store.run_sql("DELETE FROM llm_cache WHERE key IN ($a, $b)", a=keys[0], b=keys[1])
        store.run_sql("INSERT INTO llm_claims VALUES ($a, 'elsewhere:1:x', 'elsewhere', 1, now() + INTERVAL 2 SECOND), "
                      "($b, $owner, $host, $pid, now() + INTERVAL 1 HOUR)", a=keys[0], b=keys[1],
                      owner=f"{socket.gethostname()}:{gone.pid}:y", host=socket.gethostname(), pid=gone.pid)
        before = len(server.chat_requests())
        start = time.monotonic()
        run = augment(store, "ml-100k", 1, ml100k_lightgcn, settings(server), users=[1, 2, 3, 4],
                      split=ml100k_split, progress=False)
        waited = time.monotonic() - start
        assert (run.cached, run.sent, run.usable) == (2, 2, 4)
        assert len(server.chat_requests()) - before == 2
        assert 1.5 <= waited < 30  # the other host's lease ran out; the dead process's hour-long one did not count
        assert store.scalar("SELECT count(*) FROM llm_claims") == 0


def test_answers_waiting_to_be_written_go_before_the_next_claim(tmp_path: Path) -> None:
    """An answer the writer still buffers keeps its prompt claimed; the feed writes it
    before it claims again, so two runs never wait on each other's unwritten answers."""
    from pngnn.augment.cache import DetachedCacheWriter, PromptClaims
    from pngnn.augment.client import Request
    from pngnn.augment.pipeline import claimed_requests

    path = tmp_path / "c.duckdb"
    with Store(path) as store:
        since = store.scalar("SELECT CAST(now() AS TIMESTAMP)")
    claims = PromptClaims(path, lease_s=600)
    writer = DetachedCacheWriter(path, max_delay_s=3600, claims=claims)  # buffers all but the first answer
    feed = claimed_requests([Request(f"k{i}", messages(f"q{i}"), 10, "v1") for i in range(4)], claims, 2, since,
                            writer.flush)
    for request in (next(feed), next(feed)):
        writer.put(CacheEntry(key=request.key, model="m", prompt_version="v1", request="{}", status="ok"))
    assert writer.buffer and writer.written == 1
    assert next(feed).key == "k2"
    with Store(path) as store:
        assert store.query_sql("SELECT key FROM llm_claims ORDER BY key")["key"].to_list() == ["k2", "k3"]
        assert store.scalar("SELECT count(*) FROM llm_cache") == 2
    claims.release_all()
    with Store(path) as store:
        assert store.scalar("SELECT count(*) FROM llm_claims") == 0
