"""Which failures the tasks retry: transient faults yes, user errors no, decided by the error's type."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prefect.client.schemas.objects import State
from prefect.states import Failed

from pngnn.core.errors import PngnnError, TransientError, UserError
from pngnn.data.store import Store
from tasks.augment import _retry_unless_user_error
from tasks.data import ingest_task, retry_transient


def failed(exc: BaseException) -> State:
    """A real Prefect Failed state holding ``exc``, as a task run that raised it ends."""
    return Failed(data=exc)


@pytest.mark.parametrize(("exc", "retry"), [
    (TransientError("cannot download ml-1m from https://example.invalid (timed out)", "put the files in ..."), True),
    (TransientError("cannot open DuckDB file x.duckdb: lock held", "close the other process ..."), True),
    (OSError("disk hiccup"), True),
    (UserError("unknown dataset 'ml-2m'", "choose one of ['ml-100k', 'ml-1m']"), False),
    (PngnnError("checksum mismatch for u.data ..."), False),
    # the type decides, not the wording: a user error that reads like a transient one is not retried
    (UserError("cannot download: the URL is not http(s)", "fix the URL"), False),
    (ValueError("a bug"), False),
])
def test_ingest_retries_only_transient_faults(exc, retry):
    assert retry_transient(None, None, failed(exc)) is retry


@pytest.mark.slow
def test_ingest_task_retries_a_transient_fault_and_not_a_user_error(monkeypatch, tmp_path):
    """Run for real in a flow (Prefect's ephemeral server): a download that fails once with a
    TransientError is retried and the flow completes; a user error is tried once."""
    from prefect import flow

    import tasks.data as data_tasks
    from pngnn.data.ingest import IngestResult

    calls: list[str] = []

    def flaky_ingest(settings, dataset):  # test double: the first download attempt times out
        calls.append(dataset)
        if dataset == "ml-2m":
            raise UserError("unknown dataset 'ml-2m'", "choose one of ['ml-100k', 'ml-1m']")
        if len(calls) == 1:
            raise TransientError("cannot download ml-100k (timed out)", "retry later")
        return IngestResult(dataset, "checksum", 3, 2, 2, skipped=False)

    monkeypatch.setattr(data_tasks, "ingest_step", flaky_ingest)
    monkeypatch.setenv("PNGNN_DB", str(tmp_path / "db.duckdb"))
    quick = ingest_task.with_options(retry_delay_seconds=0, cache_policy=None)

    @flow
    def ingest_flow(dataset: str) -> dict:
        return quick(dataset)

    assert ingest_flow("ml-100k")["checksum"] == "checksum"
    assert calls == ["ml-100k", "ml-100k"]
    calls.clear()
    with pytest.raises(UserError, match="unknown dataset"):
        ingest_flow("ml-2m")
    assert calls == ["ml-2m"]


def test_augment_does_not_retry_user_errors():
    assert _retry_unless_user_error(None, None, failed(PngnnError("augment_step cannot be loaded"))) is False
    assert _retry_unless_user_error(None, None, failed(UserError("bad setting", "fix it"))) is False
    assert _retry_unless_user_error(None, None, failed(TransientError("file locked", "close it"))) is True
    assert _retry_unless_user_error(None, None, failed(ConnectionError("server restarted"))) is True


def _opening_error(path) -> PngnnError:
    with pytest.raises(PngnnError) as info:
        Store(path, wait_s=0.2)
    return info.value


def test_a_locked_file_is_retried_and_a_damaged_one_is_not(tmp_path):
    """The errors as the store raises them, through the task's retry condition."""
    locked = tmp_path / "locked.duckdb"
    Store(locked).close()
    hold = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
         "time.sleep(60)", str(locked)], stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "ok"
        lock_error = _opening_error(locked)
    finally:
        hold.kill()
        hold.wait()
    damaged = tmp_path / "damaged.duckdb"
    damaged.write_bytes(locked.read_bytes()[:100])
    damaged_error = _opening_error(damaged)

    assert isinstance(lock_error, TransientError)
    assert retry_transient(None, None, failed(lock_error)) is True
    assert _retry_unless_user_error(None, None, failed(lock_error)) is True
    assert isinstance(damaged_error, UserError)
    assert retry_transient(None, None, failed(damaged_error)) is False
    assert _retry_unless_user_error(None, None, failed(damaged_error)) is False
