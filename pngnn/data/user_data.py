"""A user's own interaction log (and item catalogue) read into the shape the store ingests.

Files are read by DuckDB's own readers (CSV, TSV, Parquet, JSON Lines; compressed ones too), or a
table or view of a DuckDB file (``path/to/file.duckdb:table``). A column mapping names which of
the source's columns hold the user, the item, the rating and the time (``--columns
user=...,item=...,rating=...,time=...``) and, for the catalogue, the item id, title and text.

What is checked before anything reaches the store, each a one-line error naming the fix: a
mapped column that the source lacks (the message lists the columns it has), an empty source, an
unsupported format, ratings that are not finite numbers, times that do not parse, and a like
threshold outside the ratings' range. Duplicate (user, item) rows keep the latest by time (the
last in the file without times) and are counted; catalogue items that no interaction uses, and
interactions of items the catalogue lacks, are counted and warned about.

Ids of any type (strings, numbers beyond 32 bits) are read as text; the store maps them to dense
integers and keeps them (``ingest_interactions.sql``). Without a rating column the data is
implicit: every interaction is a like (rating 1, threshold 0).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pngnn.core.constants import LIKE_THRESHOLD
from pngnn.core.errors import PngnnError
from pngnn.data.datasets import sha256_file

log = logging.getLogger(__name__)

# MovieLens' scale: a dataset whose ratings lie in it may leave the threshold at 3.5.
MOVIELENS_SCALE = (0.5, 5.0)
IMPLICIT_RATING, IMPLICIT_THRESHOLD = 1.0, 0.0
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
READERS = {  # suffix -> DuckDB table function and its options
    ".csv": "read_csv({src}, header = true)",
    ".tsv": "read_csv({src}, header = true, delim = '\t')",
    ".tab": "read_csv({src}, header = true, delim = '\t')",
    ".parquet": "read_parquet({src})",
    ".pq": "read_parquet({src})",
    ".jsonl": "read_json({src}, format = 'newline_delimited')",
    ".ndjson": "read_json({src}, format = 'newline_delimited')",
    ".json": "read_json({src})",
}
COMPRESSED = (".gz", ".zst")
RATING_KEYS, CATALOG_KEYS = ("user", "item", "rating", "time"), ("id", "title", "text")


@dataclass(frozen=True)
class ColumnMap:
    """Which source column plays which part: ``{"user": "customer_id", ...}``."""

    columns: dict[str, str]
    required: tuple[str, ...]

    @classmethod
    def parse(cls, text: str | None, keys: tuple[str, ...], required: tuple[str, ...],
              flag: str = "--columns") -> ColumnMap:
        """``user=customer_id,item=sku``; a key left out defaults to the column of the same name."""
        columns: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            key, sep, column = part.partition("=")
            key = key.strip()
            if not sep or key not in keys or not column.strip():
                raise PngnnError(f"{flag} {part!r}: expected KEY=COLUMN with KEY one of {', '.join(keys)}, e.g. "
                                 f"{flag} {keys[0]}={keys[0]}_id")
            columns[key] = column.strip()
        return cls(columns, required)

    def resolve(self, available: list[str], source: str) -> dict[str, str]:
        """Each key's column in ``available``: the mapped one, else one named like the key."""
        out: dict[str, str] = {}
        for key, column in self.columns.items():
            if column not in available:
                raise PngnnError(f"column '{column}' (mapped to {key}) is not in {source}; its columns are "
                                 f"{available}: fix the mapping, e.g. --columns {key}={available[0]}")
            out[key] = column
        for key in self.required:
            if key not in out:
                if key not in available:
                    raise PngnnError(f"{source} has no '{key}' column; name the column that holds it, e.g. "
                                     f"--columns {key}={available[0]} (its columns are {available})")
                out[key] = key
        return out


@dataclass
class Interactions:
    """A user's log as the store ingests it, and what reading it found."""

    frame: pl.DataFrame  # ext_user, ext_item (str), rating (float), ts (int, epoch seconds, or null)
    catalog: pl.DataFrame  # ext_item, title, text
    like_threshold: float
    implicit: bool
    checksum: str
    source: str
    counts: dict[str, int] = field(default_factory=dict)  # duplicates, unknown_items, unused_catalog


def source_sql(path: str, con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """The SQL that reads ``path`` (a file, or ``file.duckdb:table``), and its name for messages."""
    db, sep, table = path.rpartition(":")
    if sep and db.endswith(".duckdb") and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", table):
        if not Path(db).is_file():
            raise PngnnError(f"DuckDB file {db} does not exist; give the path of the file that holds table {table}")
        con.execute(f"ATTACH '{db}' AS source_db (READ_ONLY)")
        return f"SELECT * FROM source_db.{table}", f"table {table} of {db}"
    file = Path(path)
    if not file.is_file():
        raise PngnnError(f"{path} does not exist or is not a file; give the path of your interactions file")
    name = file.name.lower()
    for ending in COMPRESSED:
        name = name.removesuffix(ending)
    suffix = Path(name).suffix
    if suffix not in READERS:
        raise PngnnError(f"{path}: unsupported format '{suffix or file.suffix}'; use CSV (.csv), TSV (.tsv), Parquet "
                         "(.parquet), JSON Lines (.jsonl) or a DuckDB table (file.duckdb:table)")
    quoted = "'" + str(file).replace("'", "''") + "'"
    return "SELECT * FROM " + READERS[suffix].format(src=quoted), str(path)


def _read(con: duckdb.DuckDBPyConnection, path: str) -> tuple[str, list[str], dict[str, str]]:
    """A view ``src`` over the source, its columns and their DuckDB types."""
    sql, name = source_sql(path, con)
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW src AS {sql}")
        described = con.execute("DESCRIBE src").fetchall()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise PngnnError(f"cannot read {name}: {first}; check that the file is complete and in the format its "
                         "name says") from None
    types = {row[0]: str(row[1]) for row in described}
    if not con.execute("SELECT count(*) FROM src").fetchall()[0][0]:
        raise PngnnError(f"{name} holds no rows; give a file with at least one interaction")
    return name, list(types), types


def _time_sql(column: str, kind: str) -> str:
    """Epoch seconds from a time column of any common type; NULL where a value does not parse."""
    col = f'"{column}"'
    if kind.startswith(("TIMESTAMP", "DATE")):
        return f"epoch({col})::BIGINT"
    if kind in {"BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "UBIGINT", "UINTEGER", "DOUBLE", "FLOAT", "DECIMAL"} \
            or kind.startswith("DECIMAL"):
        return f"TRY_CAST({col} AS BIGINT)"
    text = f"trim(CAST({col} AS VARCHAR))"
    return (f"CASE WHEN regexp_full_match({text}, '-?[0-9]+') THEN TRY_CAST({text} AS BIGINT) "
            f"ELSE epoch(TRY_CAST({text} AS TIMESTAMP))::BIGINT END")


def _first_bad(con: duckdb.DuckDBPyConnection, condition: str, column: str) -> tuple[int, str, int]:
    count, row, value = con.execute(
        f'SELECT count(*), min(row), arg_min(CAST("{column}" AS VARCHAR), row) FROM src_rows WHERE {condition}'
    ).fetchall()[0]
    return int(count), str(value), int(row or 0)


def read_interactions(path: str, columns: ColumnMap, like_threshold: float | None = None,
                      catalog_path: str | None = None, catalog_columns: ColumnMap | None = None,
                      append_to: tuple[float, bool] | None = None) -> Interactions:
    """Read and check a user's interactions (and catalogue); nothing is written anywhere.

    ``append_to``: (threshold, implicit) of the stored dataset these rows are added to; a batch of
    new rows keeps its dataset's threshold and need not span both sides of it."""
    con = duckdb.connect()
    try:
        name, available, types = _read(con, path)
        cols = columns.resolve(available, name)
        con.execute("CREATE TEMP TABLE src_rows AS SELECT *, row_number() OVER () AS row FROM src")
        for key in ("user", "item"):
            count, _, row = _first_bad(con, f'"{cols[key]}" IS NULL', cols[key])
            if count:
                raise PngnnError(f"{name}: {count} rows have no {key} (column '{cols[key]}', first at data row {row}); "
                                 f"drop them or fill them in")
        implicit = "rating" not in cols
        rating_sql = str(IMPLICIT_RATING) if implicit else f'TRY_CAST("{cols["rating"]}" AS DOUBLE)'
        if not implicit:
            column = cols["rating"]
            count, value, row = _first_bad(con, f'"{column}" IS NULL OR TRY_CAST("{column}" AS DOUBLE) IS NULL',
                                           column)
            if count:
                raise PngnnError(f"{name}: {count} ratings in column '{column}' are missing or not numbers (first: "
                                 f"{value!r} at data row {row}); fix them, or map no rating column for implicit data")
            count, value, row = _first_bad(con, f'NOT isfinite(TRY_CAST("{column}" AS DOUBLE))', column)
            if count:
                raise PngnnError(f"{name}: {count} ratings in column '{column}' are NaN or infinite (first: {value} at "
                                 f"data row {row}); drop or fix those rows")
        time_sql = "NULL::BIGINT"
        if "time" in cols:
            column = cols["time"]
            time_sql = _time_sql(column, types[column])
            count, value, row = _first_bad(con, f'"{column}" IS NOT NULL AND ({time_sql}) IS NULL', column)
            if count:
                raise PngnnError(f"{name}: {count} values of time column '{column}' do not parse as a time (first: "
                                 f"{value!r} at data row {row}); use epoch seconds or ISO 8601 "
                                 "(2024-01-31 12:00:00)")
        frame = con.sql(f"""
            SELECT ext_user, ext_item, rating, ts FROM (
                SELECT CAST("{cols['user']}" AS VARCHAR) AS ext_user, CAST("{cols['item']}" AS VARCHAR) AS ext_item,
                       {rating_sql} AS rating, {time_sql} AS ts, row
                FROM src_rows)
            QUALIFY row_number() OVER (PARTITION BY ext_user, ext_item ORDER BY ts DESC NULLS LAST, row DESC) = 1
            ORDER BY row""").pl()
        n_rows = con.execute("SELECT count(*) FROM src_rows").fetchall()[0][0]
        if append_to is not None:
            threshold, stored_implicit = append_to
            if implicit != stored_implicit:
                raise PngnnError(f"{name} {'has no' if implicit else 'has a'} rating column and the dataset it is "
                                 f"appended to is {'implicit' if stored_implicit else 'rated'}; map the columns as "
                                 "at its first ingest")
        else:
            threshold = IMPLICIT_THRESHOLD if implicit else check_threshold(frame, like_threshold, name)
        catalog, counts = _catalog(con, catalog_path, catalog_columns, frame)
    finally:
        con.close()
    counts["duplicates"] = int(n_rows) - frame.height
    if counts["duplicates"]:
        log.warning("%s: %d duplicate (user, item) rows; kept the latest of each by time (the last in the file "
                    "where times tie or are missing)", name, counts["duplicates"])
    return Interactions(frame, catalog, threshold, implicit, files_checksum(path, catalog_path, frame), name, counts)


def check_threshold(frame: pl.DataFrame, like_threshold: float | None, name: str) -> float:
    """The like threshold: the one given, else MovieLens' 3.5 when the ratings are on its scale."""
    low, high = float(frame["rating"].min()), float(frame["rating"].max())  # type: ignore[arg-type]
    if like_threshold is None:
        if MOVIELENS_SCALE[0] <= low and high <= MOVIELENS_SCALE[1]:
            return LIKE_THRESHOLD
        raise PngnnError(f"{name}: ratings range from {low:g} to {high:g}, not MovieLens' 0.5-5 scale; say which are "
                         f"likes with --like-threshold T (ratings above T are likes), e.g. --like-threshold "
                         f"{(low + high) / 2:g}")
    if not low <= like_threshold < high:
        raise PngnnError(f"--like-threshold {like_threshold:g} is outside {name}'s ratings ({low:g} to {high:g}): "
                         f"no rating would be a {'like' if like_threshold >= high else 'dislike'}; pick a value "
                         f"from {low:g} up to below {high:g}")
    return float(like_threshold)


def _catalog(con: duckdb.DuckDBPyConnection, path: str | None, columns: ColumnMap | None,
             frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    empty = pl.DataFrame(schema={"ext_item": pl.String, "title": pl.String, "text": pl.String})
    if path is None:
        return empty, {}
    con.execute("DROP VIEW IF EXISTS src")
    name, available, _ = _read(con, path)
    cols = (columns or ColumnMap({}, ("id",))).resolve(available, name)
    select = ", ".join(f'CAST("{cols[k]}" AS VARCHAR) AS {k}' if k in cols else f"NULL::VARCHAR AS {k}"
                       for k in CATALOG_KEYS)
    catalog = con.sql(f"SELECT {select} FROM src").pl().rename({"id": "ext_item"})
    catalog = catalog.filter(pl.col("ext_item").is_not_null()).unique("ext_item", keep="last", maintain_order=True)
    rated = frame["ext_item"].unique()
    counts = {"unknown_items": int((~rated.is_in(catalog["ext_item"].implode())).sum()),
              "unused_catalog": int((~catalog["ext_item"].is_in(rated.implode())).sum())}
    if counts["unknown_items"]:
        log.warning("%s: %d rated items are not in the catalogue %s; they get no title (an LLM prompt shows them by "
                    "id)", name, counts["unknown_items"], path)
    if counts["unused_catalog"]:
        log.warning("%s: %d catalogue items have no interaction; they are kept in the catalogue but never "
                    "recommended", name, counts["unused_catalog"])
    return catalog, counts


def files_checksum(path: str, catalog_path: str | None, frame: pl.DataFrame) -> str:
    """SHA-256 over the source files' SHA-256 (a DuckDB table: over the rows as read)."""
    digest = hashlib.sha256()
    for item in filter(None, (path, catalog_path)):
        file = Path(item)
        if file.is_file():
            digest.update(sha256_file(file).encode())
        else:
            digest.update(hashlib.sha256(frame.sort(["ext_user", "ext_item"]).write_ipc(None).getvalue()).hexdigest()
                          .encode())
    return digest.hexdigest()


def check_name(name: str) -> str:
    """A dataset name for a user's data: lowercase letters, digits, '-' and '_'."""
    if not NAME_PATTERN.fullmatch(name):
        raise PngnnError(f"dataset name {name[:70]!r} is not allowed; use lowercase letters, digits, '-' and '_' "
                         "(up to 63 characters), e.g. --name shop-2024")
    return name
