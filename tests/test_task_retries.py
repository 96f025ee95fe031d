"""Which failures the tasks retry: transient faults yes, user errors no, decided by the error's type."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pngnn.errors import PngnnError, TransientError, UserError
from pngnn.store import Store
from tasks.augment import _retry_unless_user_error
from tasks.data import ingest_task, retry_transient


class Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self):
        raise self.exc


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
    assert retry_transient(None, None, Failed(exc)) is retry


def test_ingest_task_is_declared_with_retries_and_a_cache_policy():
    assert ingest_task.retries == 2 and ingest_task.retry_condition_fn is retry_transient
    assert ingest_task.cache_policy is not None and ingest_task.persist_result is not False


def test_augment_does_not_retry_user_errors():
    assert _retry_unless_user_error(None, None, Failed(PngnnError("augment_step cannot be loaded"))) is False
    assert _retry_unless_user_error(None, None, Failed(UserError("bad setting", "fix it"))) is False
    assert _retry_unless_user_error(None, None, Failed(TransientError("file locked", "close it"))) is True
    assert _retry_unless_user_error(None, None, Failed(ConnectionError("server restarted"))) is True


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
    assert retry_transient(None, None, Failed(lock_error)) is True
    assert _retry_unless_user_error(None, None, Failed(lock_error)) is True
    assert isinstance(damaged_error, UserError)
    assert retry_transient(None, None, Failed(damaged_error)) is False
    assert _retry_unless_user_error(None, None, Failed(damaged_error)) is False
