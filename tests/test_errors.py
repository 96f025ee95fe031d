"""The error types: one line ``problem; fix``, the fix readable on its own, and picklable
(Prefect pickles a failed task's exception)."""

from __future__ import annotations

import pickle

import pytest

from pngnn.augment.parse import AnswerError
from pngnn.core.errors import PngnnError, TransientError, UserError


def test_user_error_carries_its_fix():
    exc = UserError("unknown dataset 'ml-2m'", "choose one of ml-100k, ml-1m")
    assert str(exc) == "unknown dataset 'ml-2m'; choose one of ml-100k, ml-1m"
    assert (exc.problem, exc.fix) == ("unknown dataset 'ml-2m'", "choose one of ml-100k, ml-1m")


def test_both_kinds_are_caught_where_pngnn_errors_are():
    for exc in (UserError("p", "f"), TransientError("p", "f")):
        with pytest.raises(PngnnError):
            raise exc
    assert not issubclass(TransientError, UserError) and not issubclass(UserError, TransientError)


def test_a_plain_message_still_works():
    exc = PngnnError("a problem; its fix")
    assert str(exc) == "a problem; its fix" and exc.fix is None


@pytest.mark.parametrize("exc", [UserError("p", "f"), TransientError("p", "f"), PngnnError("m"),
                                 AnswerError("empty", "no text")])
def test_errors_survive_pickling(exc):
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc) and back.__dict__ == exc.__dict__
