"""The DuckDB store: one connection, the SQL files shipped in ``pngnn/data/sql/``, atomic replacement.

DuckDB is the single source of truth between pipeline steps. Every write runs inside
one transaction, so an error (bad input, a crash mid-way) leaves the file as it was.
Results cross into Python as Polars frames (zero-copy Arrow).

Opening a writable store creates every table (``SCHEMA_FILES``, idempotent), so no step
has to remember to create the tables it reads. SQL is run either from a shipped file
(``run_file`` / ``query_file``, by name) or as literal text (``run_sql`` / ``query_sql``):
the caller says which, nothing is guessed from the text.
"""

from __future__ import annotations

import contextlib
import errno
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import duckdb
import polars as pl

from pngnn.core.errors import PngnnError, TransientError, UserError
from pngnn.data.sql_files import bind, sql_statements

# The tables of every store: the data, the LLM augmentation, the file's identity.
SCHEMA_FILES = ("schema", "llm", "store_identity")

# DuckDB raises IOException both for a lock held by another process and for a file it cannot
# read; only the first is worth waiting for. Its message is the one place that tells them apart.
_LOCKED = "Could not set lock on file"
_DAMAGED = ("not a valid DuckDB database file", "Could not read enough bytes", "Corrupt database file")
_DAMAGED_FIX = "move the file away (or delete it) and run `pngnn ingest` again to rebuild it"


def damaged_error(path: Path | str, exc: duckdb.Error) -> UserError | None:
    """The one-line error for a truncated or corrupt DuckDB file, or None if ``exc`` says something else."""
    first = str(exc).splitlines()[0]
    if any(marker in first for marker in _DAMAGED):
        return UserError(f"DuckDB file {path} is damaged or truncated (DuckDB says: {first})", _DAMAGED_FIX)
    return None


def disk_full_error(path: Path | str, exc: duckdb.Error) -> OSError | None:
    """A write that failed for lack of space, as the OSError a file write would raise (the command
    line says it in one line, naming the file); None if ``exc`` says something else."""
    first = str(exc).splitlines()[0]
    if "No space left on device" not in first:
        return None
    written = re.search(r'file "([^"]+)"', first)
    return OSError(errno.ENOSPC, "No space left on device", written.group(1) if written else str(path))


def open_error(path: Path | str, exc: duckdb.Error) -> PngnnError:
    """The typed, one-line error for a DuckDB file that cannot be opened."""
    first = str(exc).splitlines()[0]
    if _LOCKED in first:
        return TransientError(f"cannot open DuckDB file {path}: {first}",
                              "close the other process using it or point PNGNN_DB elsewhere")
    return damaged_error(path, exc) or UserError(f"cannot open DuckDB file {path}: {first}",
                                                 "point PNGNN_DB at a writable DuckDB file path")


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
    """A DuckDB file holding ratings, items, users, splits and the LLM augmentation's data."""

    def __init__(self, path: Path | str, read_only: bool = False, wait_s: float = 10.0) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create the folder of DuckDB file {self.path} ({exc.strerror})",
                                "point PNGNN_DB at a writable place") from None
        self.read_only = read_only
        # Another process may hold the file for a moment (an augmentation writing answers):
        # wait a little before calling it locked.
        self.con = connect(self.path if str(path) != ":memory:" else ":memory:", read_only, wait_s)
        if not read_only:
            try:
                with self.transaction():
                    for name in SCHEMA_FILES:
                        self.run_file(name)
            except BaseException:
                self.con.close()
                raise

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

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Name a damaged file as such when a statement trips over it (a file truncated in
        its data blocks opens fine and fails only when those blocks are read)."""
        try:
            yield
        except duckdb.Error as exc:  # a bad block's checksum is a bare duckdb.Error, not an IOException
            error = damaged_error(self.path, exc) or disk_full_error(self.path, exc)
            if error is None:
                raise
            raise error from None

    def _execute(self, statements: tuple[str, ...], params: dict[str, Any], what: str) -> None:
        with self._reading():
            for stmt, used in zip(statements, bind(statements, params, what), strict=True):
                self.con.execute(stmt, used).fetchall()  # a pending result would block the connection

    def _frame(self, statements: tuple[str, ...], params: dict[str, Any], what: str) -> pl.DataFrame:
        bound = bind(statements, params, what)
        with self._reading():
            for stmt, used in zip(statements[:-1], bound[:-1], strict=True):
                self.con.execute(stmt, used).fetchall()
            # zero-copy; from_arrow is annotated DataFrame | Series, and a Table gives a DataFrame
            return cast(pl.DataFrame, pl.from_arrow(self.con.sql(statements[-1], params=bound[-1]).to_arrow_table()))

    def run_file(self, name: str, **params: Any) -> None:
        """Execute every statement of ``pngnn/data/sql/<name>.sql``, each with the parameters it names."""
        self._execute(sql_statements(name), params, f"SQL file '{name}'")

    def run_sql(self, sql: str, **params: Any) -> None:
        """Execute one literal statement that returns nothing worth reading."""
        self._execute((sql,), params, "the SQL statement")

    def query_file(self, name: str, **params: Any) -> pl.DataFrame:
        """The rows of ``pngnn/data/sql/<name>.sql``'s last statement, after running the ones before it
        (a file may build a temporary table, then read it)."""
        return self._frame(sql_statements(name), params, f"SQL file '{name}'")

    def query_sql(self, sql: str, **params: Any) -> pl.DataFrame:
        """The rows of one literal query, as a Polars frame."""
        return self._frame((sql,), params, "the SQL query")

    def scalar(self, sql: str, **params: Any) -> Any:
        """The first column of the first row of a literal query (None when there is no row)."""
        (used,) = bind((sql,), params, "the SQL query")
        with self._reading():
            rows = self.con.execute(sql, used).fetchall()  # fetchone would leave the result pending
        return rows[0][0] if rows else None

    def identity(self) -> str:
        """The file's random id (``pngnn/data/sql/store_identity.sql``): it lives and dies with the file."""
        return str(self.scalar("SELECT id FROM store_identity ORDER BY created LIMIT 1"))

    def verify(self) -> dict[str, int]:
        """Read every column of every table end to end (each block's checksum checked on the way);
        the rows per table. A damaged block is ``damaged_error``'s one line, whichever table holds it."""
        tables = self.query_sql("SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                                "AND NOT temporary ORDER BY table_name")["table_name"].to_list()
        rows = {}
        for table in tables:
            # hashing every column of every row makes DuckDB read (and checksum) all their blocks
            read = self.query_sql(f'SELECT count(*) AS n_rows, sum(hash(COLUMNS(*))) FROM "{table}"')
            rows[table] = int(read["n_rows"][0])
        return rows

    def dataset_checksum(self, dataset: str) -> str | None:
        """The checksum of the ingested ``dataset``'s files; None before its ingest."""
        return self.scalar("SELECT checksum FROM datasets WHERE dataset = $dataset", dataset=dataset)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: roll back on any exception so the file is left as it was."""
        self.con.begin()
        try:
            yield self.con
        except BaseException:
            self.con.rollback()
            raise
        try:
            self.con.commit()
        except duckdb.Error as exc:  # a full disk fails the commit: the transaction is rolled back
            full = disk_full_error(self.path, exc)
            if full is None:
                raise
            with contextlib.suppress(duckdb.Error):
                self.con.rollback()
            raise full from None

    def register(self, name: str, frame: pl.DataFrame) -> None:
        self.con.register(name, frame.to_arrow())

    def unregister(self, *names: str) -> None:
        for name in names:
            self.con.unregister(name)
