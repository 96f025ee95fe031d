"""Which failures the tasks retry: I/O faults yes, user errors no."""

from __future__ import annotations

import pytest

from pngnn.errors import PngnnError
from tasks.augment import _retry_unless_user_error
from tasks.data import ingest_task, retry_transient


class Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self):
        raise self.exc


@pytest.mark.parametrize(("exc", "retry"), [
    (PngnnError("cannot download ml-1m from https://example.invalid (timed out); put the files in ..."), True),
    (PngnnError("cannot open DuckDB file x.duckdb: lock held; close the other process ..."), True),
    (OSError("disk hiccup"), True),
    (PngnnError("unknown dataset 'ml-2m'; choose one of ['ml-100k', 'ml-1m']"), False),
    (PngnnError("checksum mismatch for u.data ..."), False),
    (ValueError("a bug"), False),
])
def test_ingest_retries_only_transient_faults(exc, retry):
    assert retry_transient(None, None, Failed(exc)) is retry


def test_ingest_task_is_declared_with_retries_and_a_cache_policy():
    assert ingest_task.retries == 2 and ingest_task.retry_condition_fn is retry_transient
    assert ingest_task.cache_policy is not None and ingest_task.persist_result is not False


def test_augment_does_not_retry_user_errors():
    assert _retry_unless_user_error(None, None, Failed(PngnnError("augment_step cannot be loaded"))) is False
    assert _retry_unless_user_error(None, None, Failed(ConnectionError("server restarted"))) is True
