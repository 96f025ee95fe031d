"""The DuckDB store: one connection, the SQL files shipped in ``pngnn/sql/``, atomic replacement.

DuckDB is the single source of truth between pipeline steps. Every write runs inside
one transaction, so an error (bad input, a crash mid-way) leaves the file as it was.
Results cross into Python as Polars frames (zero-copy Arrow).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pngnn.errors import PngnnError, TransientError, UserError

# Package data (pyproject.toml), found through importlib.resources so a wheel install finds it
# as well as a checkout does.
SQL_FILES: Traversable = resources.files("pngnn") / "sql"
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@cache
def sql_statements(name: str) -> tuple[str, ...]:
    """The statements of ``pngnn/sql/<name>.sql``, split on ';' (our SQL has none inside strings)."""
    path = SQL_FILES / f"{name}.sql"
    if not path.is_file():
        raise PngnnError(f"SQL file {path} is missing; reinstall llm-pngnn")
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
    return tuple(s.strip() for s in text.split(";") if s.strip())


# DuckDB raises IOException both for a lock held by another process and for a file it cannot
# read; only the first is worth waiting for. Its message is the one place that tells them apart.
_LOCKED = "Could not set lock on file"
_DAMAGED = ("not a valid DuckDB database file", "Could not read enough bytes", "Corrupt database file")


def open_error(path: Path | str, exc: duckdb.Error) -> PngnnError:
    """The typed, one-line error for a DuckDB file that cannot be opened."""
    first = str(exc).splitlines()[0]
    if _LOCKED in first:
        return TransientError(f"cannot open DuckDB file {path}: {first}",
                              "close the other process using it or point PNGNN_DB elsewhere")
    if any(marker in first for marker in _DAMAGED):
        return UserError(f"DuckDB file {path} is damaged or truncated (DuckDB says: {first})",
                         "move the file away (or delete it) and run `pngnn ingest` again to rebuild it")
    return UserError(f"cannot open DuckDB file {path}: {first}", "point PNGNN_DB at a writable DuckDB file path")


def connect(path: Path | str, read_only: bool = False, wait_s: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB file; while another process holds its lock, retry for ``wait_s``
    seconds, then raise ``TransientError``. A damaged file fails at once (``UserError``):
    waiting cannot repair it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            error = open_error(path, exc)
            if not isinstance(error, TransientError) or time.monotonic() >= deadline:
                raise error from None
            time.sleep(0.1)


class Store:
    """A DuckDB file holding ratings, items, users, splits and (later) LLM data."""

    def __init__(self, path: Path | str, read_only: bool = False, wait_s: float = 10.0) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        # Another process may hold the file for a moment (an augmentation writing answers):
        # wait a little before calling it locked.
        self.con = connect(self.path if str(path) != ":memory:" else ":memory:", read_only, wait_s)
        if not read_only:
            self.run("schema")

    def close(self) -> None:
        self.con.close()

    @contextmanager
    def released(self, wait_s: float = 600.0) -> Iterator[Path | None]:
        """Close the connection for a long stretch that needs no database (an LLM batch),
        so other processes (a training run) can open the file meanwhile; reconnect after,
        waiting up to ``wait_s`` for the lock. Yields the file's path (None for an
        in-memory store, which stays open)."""
        if str(self.path) == ":memory:":
            yield None
            return
        self.con.close()
        try:
            yield self.path
        finally:
            self.con = connect(self.path, self.read_only, wait_s)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, name: str, **params: Any) -> None:
        """Execute every statement of a SQL file, each with the parameters it names."""
        for stmt in sql_statements(name):
            used = {p: params[p] for p in set(_PARAM.findall(stmt))}
            self.con.execute(stmt, used).fetchall()

    def query(self, name_or_sql: str, **params: Any) -> pl.DataFrame:
        """Run a SELECT (a SQL file name or literal SQL) and return a Polars frame."""
        stmt = name_or_sql if " " in name_or_sql else sql_statements(name_or_sql)[-1]
        used = {p: params[p] for p in set(_PARAM.findall(stmt))}
        return pl.from_arrow(self.con.sql(stmt, params=used).to_arrow_table())  # zero-copy Arrow

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: roll back on any exception so the file is left as it was."""
        self.con.begin()
        try:
            yield self.con
        except BaseException:
            self.con.rollback()
            raise
        self.con.commit()

    def register(self, name: str, frame: pl.DataFrame) -> None:
        self.con.register(name, frame.to_arrow())

    def unregister(self, *names: str) -> None:
        for name in names:
            self.con.unregister(name)

    def scalar(self, sql: str, **params: Any) -> Any:
        rows = self.con.sql(sql, params=params).fetchall()
        row = rows[0] if rows else None
        return None if row is None else row[0]
