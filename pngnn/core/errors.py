"""The exceptions of llm-pngnn: one base the command line prints, and two kinds under it.

Each message is a single line that names the problem and the fix, so the CLI can
print it as is and exit non-zero instead of dumping a traceback. The kind says what a
caller may do about it without reading the message:

* ``UserError``: only the user can fix it (bad input, a damaged file, an unknown name):
  retrying the same call fails the same way.
* ``TransientError``: the same call may succeed later (a DuckDB file locked by another
  process, a failed download): the Prefect tasks retry it.

A plain ``PngnnError`` (raised by code that predates the split) is treated as a user error.
"""

from __future__ import annotations

from typing import Any


class PngnnError(Exception):
    """A failure reported to the user as one line: ``problem; fix``.

    ``fix`` is kept apart so callers (and tests) can read it without parsing the message.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(f"{problem}; {fix}" if fix else problem)
        self.problem = problem
        self.fix = fix

    def __reduce__(self) -> tuple[Any, ...]:
        # Prefect pickles a failed task's exception; the default (cls(*args)) would call
        # __init__ with the message alone, which a subclass's signature may not accept.
        return _rebuild, (type(self), self.args, dict(self.__dict__))


class UserError(PngnnError):
    """A problem the user must fix (bad input, missing or damaged file, unknown name): never retried."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem, fix)


class TransientError(PngnnError):
    """A fault that may clear by itself (a lock held by another process, a network hiccup): worth retrying.

    ``fix`` says what to do when the retries run out."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem, fix)


def _rebuild(cls: type[PngnnError], args: tuple[Any, ...], state: dict[str, Any]) -> PngnnError:
    """Unpickle without calling ``__init__`` (see ``PngnnError.__reduce__``)."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc
