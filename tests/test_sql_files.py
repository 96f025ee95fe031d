"""The shipped SQL files: found by name, split as DuckDB splits them, parameters bound exactly."""

from __future__ import annotations

import duckdb
import pytest

import pngnn.data.sql_files as sql_files
from pngnn.core.errors import UserError
from pngnn.data.sql_files import bind, parameter_names, sql_file_names, sql_statement, sql_statements


def test_every_file_splits_as_duckdb_parses_it():
    """Our ';' split must agree with DuckDB's parser, statement for statement and parameter for
    parameter: a ';' inside a string or a comment would otherwise cut a statement in two."""
    con = duckdb.connect()
    names = sql_file_names()
    assert {"schema", "llm", "ingest_dataset", "merge_augmented"} <= set(names)
    for name in names:
        ours = sql_statements(name)
        theirs = con.extract_statements(";\n".join(ours))
        assert len(theirs) == len(ours), name
        for stmt, parsed in zip(ours, theirs, strict=True):
            assert parameter_names(stmt) == set(parsed.named_parameters), (name, stmt[:60])


def test_an_unknown_name_names_the_known_ones():
    with pytest.raises(UserError, match=r"unknown SQL file 'nope'.*'load_split'") as info:
        sql_statements("nope")
    assert "reinstall llm-pngnn" in info.value.fix


def test_sql_text_is_not_taken_for_a_file_name():
    with pytest.raises(ValueError, match=r"not a SQL file name.*query_sql"):
        sql_statements("SELECT 1")


def test_a_missing_folder_is_an_unknown_file(monkeypatch, tmp_path):
    monkeypatch.setattr(sql_files, "SQL_FILES", tmp_path / "gone")
    sql_statements.cache_clear()
    try:
        with pytest.raises(UserError, match=r"unknown SQL file 'schema'.*\[\]"):
            sql_statements("schema")
    finally:
        sql_statements.cache_clear()


def test_each_statement_gets_only_its_parameters():
    stmts = ("SELECT $a, $b", "SELECT $b + 1")
    assert bind(stmts, {"a": 1, "b": 2}, "x") == [{"a": 1, "b": 2}, {"b": 2}]


@pytest.mark.parametrize(("params", "needle"), [
    ({"a": 1}, r"missing \['b'\], unknown \[\]"),
    ({"a": 1, "b": 2, "c": 3}, r"missing \[\], unknown \['c'\]"),
])
def test_a_missing_or_unused_parameter_is_an_error(params, needle):
    with pytest.raises(TypeError, match=rf"SQL file 'x' takes the parameters \['a', 'b'\]: {needle}"):
        bind(("SELECT $a, $b",), params, "SQL file 'x'")


def test_single_statement():
    assert sql_statement("load_split").startswith("SELECT")
    with pytest.raises(ValueError, match="'split' holds 4 statements, not one"):
        sql_statement("split")
