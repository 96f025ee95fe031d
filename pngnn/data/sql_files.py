"""The SQL files shipped in ``pngnn/data/sql/``: reading them, and binding their ``$name`` parameters.

The files are package data (pyproject.toml), found through ``importlib.resources`` so an
installed wheel finds them as a checkout does. A file holds one or more statements
separated by ';' (none of our SQL has a ';' inside a string); lines starting with ``--``
are comments. Each statement is given exactly the parameters it names, and a call that
passes a parameter no statement names, or misses one, fails before anything runs: a typo
in a keyword must not silently bind NULL or be ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from pngnn.core.errors import UserError

SQL_FILES: Traversable = resources.files("pngnn.data") / "sql"
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def sql_file_names() -> list[str]:
    """Names of the shipped SQL files (without ``.sql``), sorted."""
    if not SQL_FILES.is_dir():
        return []
    return sorted(f.name.removesuffix(".sql") for f in SQL_FILES.iterdir() if f.name.endswith(".sql"))


@cache
def sql_statements(name: str) -> tuple[str, ...]:
    """The statements of ``pngnn/data/sql/<name>.sql``, in file order, comments stripped."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name[:60]!r} is not a SQL file name (lowercase letters, digits, '_'); "
                         "literal SQL goes to Store.query_sql / Store.run_sql")
    path = SQL_FILES / f"{name}.sql"
    if not path.is_file():
        raise UserError(f"unknown SQL file '{name}': {name}.sql is not among pngnn's SQL files "
                        f"{sql_file_names()}", "use one of those names, or reinstall llm-pngnn if it is missing")
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
    statements = tuple(s.strip() for s in text.split(";") if s.strip())
    if not statements:
        raise UserError(f"SQL file {path} holds no statement", "reinstall llm-pngnn")
    return statements


@cache
def parameter_names(statement: str) -> frozenset[str]:
    """The ``$name`` parameters a statement uses."""
    return frozenset(_PARAM.findall(statement))


def bind(statements: Sequence[str], params: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    """Each statement's own parameters from ``params``; a missing or unused one is an error
    naming ``what`` (the file or the SQL)."""
    used = [parameter_names(s) for s in statements]
    wanted = frozenset().union(*used)
    missing, unknown = sorted(wanted - params.keys()), sorted(params.keys() - wanted)
    if missing or unknown:
        raise TypeError(f"{what} takes the parameters {sorted(wanted)}: missing {missing}, unknown {unknown}")
    return [{p: params[p] for p in names} for names in used]


def sql_statement(name: str) -> str:
    """The one statement of ``pngnn/data/sql/<name>.sql`` (for a caller that runs it on its own
    connection, e.g. ``executemany``)."""
    statements = sql_statements(name)
    if len(statements) != 1:
        raise ValueError(f"SQL file '{name}' holds {len(statements)} statements, not one")
    return statements[0]
