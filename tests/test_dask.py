"""Fan-out through Prefect on a Dask cluster: the runner from settings, the LLM chunks, the rate
limit, the experiment grid, and an unreachable scheduler.

Real components throughout: a real ``prefect server`` (``tests/servers.py``), real local Dask
clusters (``distributed.LocalCluster``, worker processes), ML-100K. The LLM is the
fault-injection server (``fault_llm_server.py``), the suite's test double of an OpenAI-compatible
server; its ``error`` action is the one injected fault here.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_llm_server import FaultLLMServer, Script, answer, error

from pngnn.augment.client import Elsewhere, LLMClient, Request
from pngnn.augment.fanout import ChunkedClient, ChunkResult, ask_chunk
from pngnn.augment.prompts import messages
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings, Settings
from tests.dask_fanout import (
    DATASET,
    MODEL,
    SEED,
    llm_settings,
    prepare_db,
    read_cache_and_edges,
    responder,
    run_fanout,
)
from tests.servers import prefect_api_in_process


def dead_address() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


# -- settings and runner choice (no cluster) -------------------------------------------------


def test_fanout_settings_defaults_and_bad_values(monkeypatch):
    settings = Settings()
    assert (settings.task_runner, settings.dask_address, settings.dask_workers) == ("threads", None, 2)
    assert (settings.llm_rate_limit, settings.llm_chunk_size, settings.result_storage) == (None, 25, None)
    monkeypatch.setenv("PNGNN_LLM_RATE_LIMIT", "0")
    with pytest.raises(PngnnError, match="PNGNN_LLM_RATE_LIMIT='0'"):
        Settings()
    monkeypatch.delenv("PNGNN_LLM_RATE_LIMIT")
    monkeypatch.setenv("PNGNN_TASK_RUNNER", "spark")
    with pytest.raises(PngnnError, match=r"PNGNN_TASK_RUNNER='spark'.*'threads' or 'dask'"):
        Settings()


def test_task_runner_comes_from_settings():
    from prefect.task_runners import ThreadPoolTaskRunner

    from tasks.runners import PngnnDaskTaskRunner, task_runner

    assert type(task_runner(Settings())) is ThreadPoolTaskRunner  # the default: today's behaviour
    local = task_runner(Settings(task_runner="dask", dask_workers=3))
    assert isinstance(local, PngnnDaskTaskRunner) and local.address is None
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["processes"] is True
    remote = task_runner(Settings(dask_address="tcp://10.0.0.5:8786"))  # an address means Dask
    assert isinstance(remote, PngnnDaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    assert remote.duplicate() == remote and type(remote.duplicate()) is PngnnDaskTaskRunner


def test_unreachable_scheduler_is_one_line_naming_the_setting():
    from tasks.runners import PngnnDaskTaskRunner

    address = dead_address()
    start = time.monotonic()
    with pytest.raises(PngnnError) as info:
        PngnnDaskTaskRunner(address=address).__enter__()
    assert time.monotonic() - start < 10  # not distributed's 30 s connect timeout
    message = str(info.value)
    assert "\n" not in message and f"PNGNN_DASK_ADDRESS={address}" in message
    assert "fix PNGNN_DASK_ADDRESS" in info.value.fix
    with pytest.raises(PngnnError, match="PNGNN_DASK_ADDRESS=nonsense is not a scheduler address"):
        PngnnDaskTaskRunner(address="nonsense").__enter__()


def test_pngnn_run_with_an_unreachable_scheduler_exits_2_with_one_line(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    address = dead_address()
    env = {**os.environ, "PYTHONPATH": str(root), "PNGNN_DASK_ADDRESS": address,
           "PNGNN_DB": str(tmp_path / "pngnn.duckdb"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--method", "mostpop", "--epochs", "1"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"PNGNN_DASK_ADDRESS={address}" in lines[0], proc.stderr
    assert not (tmp_path / "pngnn.duckdb").exists()


def test_result_storage_block_slug_is_passed_as_is():
    from tasks.storage import result_storage

    assert result_storage(Settings(result_storage="s3-bucket/pngnn-results")) == "s3-bucket/pngnn-results"


# -- the library's side: the throttle hook and the chunked client (no Prefect) ------------------


def test_throttle_runs_before_every_request_retries_included():
    calls: list[float] = []
    with FaultLLMServer(Script(models=(MODEL,))) as server:
        server.push(error(503), answer(3, 4))  # the injected fault: one 503, then an answer
        llm = LLMSettings(base_url=server.base_url, model=MODEL, schema_mode="json_object", backoff_initial_s=0,
                          backoff_max_s=0)
        client = LLMClient(llm, throttle=lambda: calls.append(time.monotonic()))
        entry = client.process(Request("k", messages("a prompt"), 10, "v1"))
        client.close()
        starts = [r.start for r in server.chat_requests()]
    assert entry.status == "ok" and (entry.like_idx, entry.dislike_idx) == (3, 4)
    assert len(calls) == len(starts) == 2
    assert all(c <= s for c, s in zip(calls, starts, strict=True))  # each call came before its request


def test_chunked_client_sends_chunks_and_waits_while_prompts_are_held_elsewhere():
    requests = [Request(f"k{i}", messages(f"prompt {i}"), 10, "v1") for i in range(7)]
    feed = [*requests[:4], Elsewhere(answered=2), requests[4], Elsewhere(wait=True), *requests[5:]]
    seen: list[list[str]] = []
    with FaultLLMServer(Script(models=(MODEL,))) as server:
        llm = LLMSettings(base_url=server.base_url, model=MODEL, schema_mode="json_object", concurrency=2)

        def dispatch(chunks: list[list[Request]]) -> Iterator[ChunkResult]:
            seen.append([",".join(r.key for r in chunk) for chunk in chunks])
            return (ask_chunk(chunk, llm) for chunk in chunks)

        client = ChunkedClient(llm, dispatch, chunk_size=3)
        client.poll_s = 0.01
        written: list[str] = []
        counts = client.run_batch(iter(feed), lambda e: written.append(e.key), cached=1, total=7)
        sent = len(server.chat_requests())
    assert seen == [["k0,k1,k2", "k3,k4"], ["k5,k6"]]  # the held rest goes in the next round
    assert sorted(written) == [r.key for r in requests] and sent == 7
    assert (counts.sent, counts.ok, counts.shared, counts.cached) == (7, 7, 2, 1)
    assert client.settings.concurrency == 3  # augment claims two chunks at a time
    with pytest.raises(PngnnError, match="PNGNN_LLM_CHUNK_SIZE"):
        ChunkedClient(llm, dispatch, chunk_size=0)


# -- on real Dask clusters under a real Prefect server ------------------------------------------


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory) -> Iterator[str]:
    with prefect_api_in_process(tmp_path_factory.mktemp("prefect")) as api:
        yield api


@pytest.mark.slow
def test_fanout_on_two_workers_gives_the_thread_path_cache_and_edges_and_holds_the_rate_limit(
        prefect_api, tmp_path, data_dir):
    from pngnn.augment.step import augment_step

    users, rate = 24, 4.0
    base = prepare_db(tmp_path / "base.duckdb", data_dir, users)
    # today's path: one process, one thread pool, no Prefect
    sequential = tmp_path / "sequential.duckdb"
    shutil.copyfile(base, sequential)
    with FaultLLMServer(Script(latency=0.05, responder=responder, models=(MODEL,))) as server:
        augment_step(Settings(db_path=sequential), DATASET, SEED, llm_settings(server.base_url, users, 2),
                     progress=False)
    want_cache, want_edges = read_cache_and_edges(sequential)

    run = run_fanout(base, tmp_path / "dask", latency=0.05, workers=2, users=users, chunk_size=6, concurrency=2,
                     rate=rate)
    assert len(want_cache) == users and len(want_edges) > users  # a like and a dislike per user, minus drops
    assert run.cache == want_cache and run.edges == want_edges
    assert run.counts["chunks"] == 4 and run.counts["sent"] == users
    # Every prompt reached the server, and once: unless the scheduler removed a worker that stopped
    # heartbeating (a stalled process on a loaded machine), whose chunk then ran again elsewhere.
    assert len(run.prompts_asked) == users
    repeated = sum(n - 1 for n in run.prompts_asked.values())
    assert repeated == 0 or run.lost_workers, f"{repeated} prompts sent twice with no worker lost"
    if run.lost_workers:
        warnings.warn(f"the scheduler lost a worker and {repeated} prompts were asked again: {run.lost_workers}",
                      stacklevel=1)
    # What the server saw, with margins for a loaded machine (a grant 1.00 s after another can reach the
    # server 0.98 s after it, and a limiter may let a first burst through): unlimited, the 24 requests
    # arrive within half a second; limited to `rate` a second they span seconds, and no 2 s window holds
    # more than three seconds' worth.
    times = sorted(run.request_times)
    span, busiest = times[-1] - times[0], run.max_in_window(2.0)
    measured = f"{len(times)} requests over {span:.2f} s, at most {busiest} in 2 s; times {times}"
    assert span >= 0.9 * (users - 2 * rate) / rate, measured
    assert busiest <= 3 * rate, measured
    # the chunks' results were persisted to the default result storage, beside the DuckDB file
    assert len(list((tmp_path / "dask" / "prefect-results").iterdir())) >= 4


@pytest.mark.slow
def test_unreachable_scheduler_stops_the_pipeline_before_any_work(prefect_api, tmp_path, monkeypatch, data_dir):
    from flows.pipeline import pipeline

    address = dead_address()
    monkeypatch.setenv("PNGNN_DASK_ADDRESS", address)
    monkeypatch.setenv("PNGNN_DB", str(tmp_path / "pngnn.duckdb"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    start = time.monotonic()
    with pytest.raises(PngnnError) as info:
        pipeline(profile="quick", methods=["mostpop"], epochs=1)
    assert time.monotonic() - start < 60
    assert f"PNGNN_DASK_ADDRESS={address}" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "pngnn.duckdb").exists()  # nothing was ingested
    assert not (tmp_path / "mlflow.db").exists()  # no MLflow run was opened


@pytest.mark.slow
def test_experiment_grid_gives_the_same_metrics_sequentially_and_on_dask(prefect_api, tmp_path, monkeypatch,
                                                                         ml100k_db_copy, data_dir):
    import mlflow

    from flows.pipeline import pipeline

    monkeypatch.setenv("PNGNN_DB", str(ml100k_db_copy))
    monkeypatch.setenv("PNGNN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PNGNN_PROFILES_DIR", str(tmp_path / "profiles"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    grid = {"profile": "quick", "seeds": [1, 2], "methods": ["lightgcn"], "epochs": 1}
    sequential = pipeline(**grid)
    monkeypatch.setenv("PNGNN_TASK_RUNNER", "dask")
    monkeypatch.setenv("PNGNN_DASK_WORKERS", "2")
    on_dask = pipeline(**grid)

    assert set(sequential["summary"]) == set(on_dask["summary"]) and len(sequential["summary"]) > 20
    for name, value in sequential["summary"].items():
        assert on_dask["summary"][name]["mean"] == pytest.approx(value["mean"], abs=1e-6), name
        assert on_dask["summary"][name]["std"] == pytest.approx(value["std"], abs=1e-6), name
    # the Dask run's trainings ran in worker processes, as child runs of its parent run
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    children = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{on_dask['parent_run_id']}'")
    assert len(children) == 2
    assert str(os.getpid()) not in {r.data.tags["pid"] for r in children}


@pytest.mark.slow
def test_fanout_heals_a_transient_outage_as_the_augment_task_does(prefect_api, tmp_path, data_dir):
    """Every request of the first attempt gets a 429 (the injected fault), so every prompt is left
    without an answer and the attempt fails with a TransientError; the retry asks them again and
    the split ends fully answered, as the single augment task's Prefect retries would."""
    from fault_llm_server import rate_limit
    from prefect import flow

    from tasks.llm_fanout import fanout_augment

    users = 6
    db = prepare_db(tmp_path / "pngnn.duckdb", data_dir, users)
    settings = Settings(db_path=db, llm_chunk_size=3)
    with FaultLLMServer(Script(responder=responder, models=(MODEL,))) as server:
        llm = llm_settings(server.base_url, users, concurrency=2)
        server.push(*[rate_limit(0)] * (users * llm.max_attempts))

        @flow(name="fanout-heals")
        def heal() -> dict:
            return fanout_augment(settings, DATASET, SEED, llm, delays=(0.0,))

        counts = heal()
        assert len(server.chat_requests()) == users * llm.max_attempts + users  # the outage, then one each
    assert (counts["sent"], counts["ok"], counts["failed_transient"]) == (users, users, 0)
    cache, _ = read_cache_and_edges(db)
    assert [row[3] for row in cache] == ["ok"] * users


@pytest.mark.slow
def test_tune_flow_gives_the_same_studies_sequentially_and_on_dask(prefect_api, tmp_path, monkeypatch,
                                                                  ml100k_db_copy, data_dir):
    """The tuning grid: each split's study on its own Dask worker (the splits carved by the flow's
    process) chooses what the sequential studies choose, and its trials ran in the workers."""
    import mlflow

    from flows.tune import tune

    monkeypatch.setenv("PNGNN_DB", str(ml100k_db_copy))
    monkeypatch.setenv("PNGNN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("PNGNN_PROFILES_DIR", str(tmp_path / "profiles"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    study = {"method": "ease", "profile": "quick", "seeds": [1, 2], "trials": 3, "test": False}
    sequential = tune(save_as="ease-threads", **study)
    monkeypatch.setenv("PNGNN_TASK_RUNNER", "dask")
    monkeypatch.setenv("PNGNN_DASK_WORKERS", "2")
    on_dask = tune(save_as="ease-dask", **study)

    assert set(on_dask["best"]) == {1, 2}
    assert on_dask["best"] == sequential["best"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    trials = mlflow.search_runs(search_all_experiments=True, output_format="list",
                                filter_string=f"tags.mlflow.parentRunId = '{on_dask['parent_run_id']}'")
    assert len(trials) == 2 * 3
    assert str(os.getpid()) not in {r.data.tags["pid"] for r in trials}
