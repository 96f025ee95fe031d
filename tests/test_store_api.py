"""The store's SQL entry points and its schema: complete at open, explicit file-or-text calls."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from pngnn.core.errors import UserError
from pngnn.data.sql_files import sql_statements
from pngnn.data.store import SCHEMA_FILES, Store

# Every table the code reads or writes (the schema files' CREATE TABLE statements).
TABLES = {"datasets", "ratings", "items", "users", "split_meta", "splits", "llm_cache", "llm_prompts",
          "llm_candidates", "llm_claims", "augmented_edges", "augmented_merges", "store_identity"}


def tables(store: Store) -> set[str]:
    return set(store.query_sql("SELECT table_name FROM information_schema.tables")["table_name"])


def test_schema_files_create_every_table():
    created = {s.split("(")[0].split()[-1] for name in SCHEMA_FILES for s in sql_statements(name)
               if s.startswith("CREATE TABLE")}
    assert created == TABLES


def test_a_new_store_has_every_table_and_one_identity(tmp_path):
    with Store(tmp_path / "t.duckdb") as store:
        assert tables(store) == TABLES
        # the LLM tables are there before any augmentation code ran: reading them just works
        assert store.scalar("SELECT count(*) FROM llm_cache") == 0
        first = store.identity()
    with Store(tmp_path / "t.duckdb") as store:  # reopening changes nothing
        assert tables(store) == TABLES
        assert store.identity() == first
        assert store.scalar("SELECT count(*) FROM store_identity") == 1
    (tmp_path / "t.duckdb").unlink()
    with Store(tmp_path / "t.duckdb") as store:  # a new file, a new identity
        assert store.identity() != first


def test_an_older_file_gets_the_missing_tables(tmp_path):
    """A file written before the LLM tables existed is completed when opened for writing."""
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for stmt in sql_statements("schema"):
        con.execute(stmt)
    con.execute("INSERT INTO ratings VALUES ('x', 1, 2, 4.0, 0)")
    con.close()
    with Store(path) as store:
        assert tables(store) == TABLES
        assert store.scalar("SELECT count(*) FROM ratings") == 1


def test_a_read_only_store_writes_nothing(tmp_path):
    path = tmp_path / "ro.duckdb"
    duckdb.connect(str(path)).close()
    with Store(path, read_only=True) as store:
        assert tables(store) == set()


def test_query_file_and_query_sql(ml100k_store):
    by_file = ml100k_store.query_file("load_split", dataset="ml-100k", seed=1)
    assert by_file.height == 100_000 and by_file.columns == ["user_idx", "item_idx", "rating", "part"]
    by_text = ml100k_store.query_sql("SELECT count(*) AS n FROM splits WHERE seed = $seed", seed=1)
    assert by_text["n"][0] == 100_000


def test_query_file_rejects_sql_text_and_unknown_names(ml100k_store):
    with pytest.raises(ValueError, match="query_sql"):
        ml100k_store.query_file("SELECT * FROM ratings")
    with pytest.raises(UserError, match="unknown SQL file 'load_splits'"):
        ml100k_store.query_file("load_splits", dataset="ml-100k", seed=1)


def test_query_sql_does_not_look_up_files(ml100k_store):
    """A bare word is SQL to query_sql (DuckDB rejects it), never a file name."""
    with pytest.raises(duckdb.ParserException):
        ml100k_store.query_sql("load_split")


def test_a_typo_in_a_parameter_fails_before_running(ml100k_store):
    with pytest.raises(TypeError, match=r"SQL file 'load_split'.*missing \['seed'\], unknown \['sead'\]"):
        ml100k_store.query_file("load_split", dataset="ml-100k", sead=1)


def test_run_file_and_run_sql_write_in_a_transaction(tmp_path):
    with Store(tmp_path / "t.duckdb") as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.run_sql("INSERT INTO datasets (dataset, checksum, n_ratings, n_users, n_items, ingested_at) "
                          "VALUES ($d, 'c', 1, 1, 1, now())", d="a")
            raise RuntimeError("crash")
        assert store.scalar("SELECT count(*) FROM datasets") == 0
        store.run_sql("INSERT INTO datasets (dataset, checksum, n_ratings, n_users, n_items, ingested_at) "
                      "VALUES ($d, 'c', 1, 1, 1, now())", d="a")
        assert store.scalar("SELECT dataset FROM datasets") == "a"


def test_query_file_returns_its_last_statement(tmp_path):
    """merge_augmented builds a temporary table, writes, then reports counts: one call."""
    with Store(tmp_path / "t.duckdb") as store:
        store.register("llm_likes", pl.DataFrame(schema={"key": pl.String, "like_idx": pl.Int32}))
        counts = store.query_file("merge_augmented", dataset="d", seed=1, model="m", prompt_version="v",
                                  run_id=None, scoring="answer")
        assert counts.row(0, named=True) == {"agreed": 0, "positive": 0, "negative": 0}

