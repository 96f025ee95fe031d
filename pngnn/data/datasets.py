"""Download, verify and parse the MovieLens originals.

Files live in a cache folder (``PNGNN_DATA_DIR``) laid out as GroupLens' zips unpack
(``ml-1m/ratings.dat``, ``ml-100k/u.data``, ``ml-10M100K/ratings.dat``, ``ml-20m/ratings.csv``
...). A file already in the cache is used without network; a missing one is fetched from
GroupLens with pooch (streamed to disk, hash-checked). Either way every file is checked against a
SHA-256 sum before it reaches DuckDB, so a truncated or tampered file is caught.

Where the sums come from (the checksum policy):

* ML-100K and ML-1M: ``pngnn/data/SHA256SUMS``, shipped with the package, computed from the
  GroupLens originals.
* ML-10M, ML-20M, ML-25M: no sum is shipped, because none could be computed from the real
  archives when this support was written (no copy, no network) and a sum nobody checked
  would be worse than none. The sums are *pinned* per data folder instead, in
  ``<folder>/SHA256SUMS`` (``sha256sum`` format). A download writes that file itself after
  checking the zip against the MD5 GroupLens publishes next to it (``<name>.zip.md5``); files
  put there by hand are refused until the user pins them (the error prints the one
  command). Either way the ingested data's checksum (``RawDataset.checksum``, kept in
  DuckDB's ``datasets`` table and on every MLflow run) is computed from the pinned sums, so
  a run records exactly which files it saw.

Parsing is vectorised with Polars: ML-100K/1M are decoded as Latin-1 (their titles are),
ML-10M+ as UTF-8 (falling back to Latin-1 when a file is not valid UTF-8); each file is split
into lines and each column is cast strictly. The first bad line is reported with its file
and line number. CSV files (ML-20M, ML-25M) have a header and quoted titles with commas:
their items are read by Polars' CSV reader, their ratings (digits only) line by line.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pngnn.core.config import check_dataset
from pngnn.core.errors import PngnnError, TransientError, UserError

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
_SUMS_FILE = Path(__file__).with_name("SHA256SUMS")

FILES: dict[str, dict[str, str]] = {
    "ml-1m": {"ratings": "ratings.dat", "items": "movies.dat", "users": "users.dat"},
    "ml-100k": {"ratings": "u.data", "items": "u.item", "users": "u.user", "genres": "u.genre"},
    "ml-10m": {"ratings": "ratings.dat", "items": "movies.dat"},
    "ml-20m": {"ratings": "ratings.csv", "items": "movies.csv"},
    "ml-25m": {"ratings": "ratings.csv", "items": "movies.csv"},
}
# The datasets whose SHA-256 sums ship in pngnn/data/SHA256SUMS; the others' are pinned per folder.
SHIPPED: tuple[str, ...] = ("ml-1m", "ml-100k")
# The folder a dataset's zip unpacks to, where it is not the dataset's name.
FOLDERS: dict[str, str] = {"ml-10m": "ml-10M100K"}
PIN_FILE = "SHA256SUMS"
# ML-20M and ML-25M's CSV headers: a file with another header is another format.
RATINGS_CSV_HEADER = "userId,movieId,rating,timestamp"
MOVIES_CSV_COLUMNS = ["movieId", "title", "genres"]
NO_GENRES = "(no genres listed)"


def folder(name: str) -> str:
    """The dataset's folder under the data directory (and inside its zip)."""
    return FOLDERS.get(name, name)


@dataclass(frozen=True)
class RawDataset:
    """Parsed MovieLens tables, ready for ingestion."""

    name: str
    ratings: pl.DataFrame  # user_id, item_id, rating, ts
    items: pl.DataFrame  # item_id, title, year, genres
    users: pl.DataFrame  # user_id, gender, age, occupation, zip
    checksum: str  # sha256 over the sums of the dataset's files: one id for the whole dataset


def expected_sums() -> dict[str, str]:
    """The shipped sums (``pngnn/data/SHA256SUMS``), keyed ``<folder>/<file>``."""
    sums: dict[str, str] = {}
    for line in _SUMS_FILE.read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            sums[rel.strip()] = digest
    return sums


def pin_path(name: str, data_dir: Path) -> Path:
    return data_dir / folder(name) / PIN_FILE


def pinned_sums(name: str, data_dir: Path) -> dict[str, str]:
    """The sums the user pinned for ``name`` (``sha256sum`` output), keyed ``<folder>/<file>``;
    empty when there is no pin file. Lines that are not ``digest  file`` are ignored."""
    path = pin_path(name, data_dir)
    if not path.is_file():
        return {}
    sums: dict[str, str] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == 64:
            fname = parts[1].lstrip("*").removeprefix("./")
            sums[f"{folder(name)}/{fname}"] = parts[0].lower()
    return sums


def known_sums(name: str, data_dir: Path) -> dict[str, str]:
    """Shipped sums for ML-100K/1M, the folder's pinned ones for the others."""
    return expected_sums() if name in SHIPPED else pinned_sums(name, data_dir)


def dataset_checksum(name: str, sums: dict[str, str]) -> str | None:
    """One id for the whole dataset: sha256 over its files' sums in file-name order; None when a
    file has no sum."""
    files = FILES.get(name)
    if files is None:
        return None
    rels = [f"{folder(name)}/{f}" for f in sorted(files.values())]
    if any(rel not in sums for rel in rels):
        return None
    return hashlib.sha256("".join(sums[rel] for rel in rels).encode()).hexdigest()


def expected_checksum(name: str, data_dir: Path | None = None) -> str | None:
    """The dataset's checksum (``RawDataset.checksum``) from the known sums, without reading its
    files; None for an unknown dataset or one whose files are not pinned (in ``data_dir``, by
    default ``PNGNN_DATA_DIR``)."""
    if name not in FILES:
        return None
    if name in SHIPPED:
        return dataset_checksum(name, expected_sums())
    if data_dir is None:
        from pngnn.core.settings import Settings

        data_dir = Settings().data_dir
    return dataset_checksum(name, pinned_sums(name, data_dir))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, rel: str, sums: dict[str, str] | None = None,
                fix: str = "delete it so it is downloaded again") -> str:
    """Check one file against its known SHA-256 (``sums``, by default the shipped ones); return
    the digest."""
    want = (expected_sums() if sums is None else sums).get(rel)
    if want is None:
        raise PngnnError(f"no SHA-256 known for '{rel}'; add it to {_SUMS_FILE}")
    got = sha256_file(path)
    if got != want:
        raise PngnnError(
            f"checksum mismatch for {path} (sha256 {got[:12]}..., expected {want[:12]}...): "
            f"the file is truncated or altered; {fix}"
        )
    return got


def _fetch(url: str, name: str, target: Path, into: Path, known_hash: str | None = None) -> Path:
    """``url`` downloaded into the folder ``into`` by pooch (streamed to disk, checked against
    ``known_hash``, ``md5:<hex>``, when given); a network failure is a TransientError."""
    import pooch
    import requests

    # pooch logs each download at INFO on a stderr handler of its own, made at import: under a
    # command line (or a test's captured stderr) that is a second, unasked-for channel; errors
    # still reach the user as the one line below.
    pooch.get_logger().setLevel("WARNING")
    try:
        return Path(pooch.retrieve(url, known_hash=known_hash, fname=url.rsplit("/", 1)[-1], path=into,
                                   progressbar=False))
    except (OSError, requests.RequestException) as exc:
        raise TransientError(f"cannot download {name} from {url} ({exc})",
                             f"put the files in {target} or set PNGNN_DATA_DIR (the download needs internet)"
                             ) from None
    except ValueError as exc:  # pooch: the file's hash is not the known one
        if "hash" not in str(exc).lower():
            raise
        raise PngnnError(f"MD5 mismatch for {url} (against the {url}.md5 GroupLens publishes): the download is "
                         "truncated or altered", "download it again") from None


def published_md5(md5_text: str, url: str) -> str:
    """The digest in GroupLens' ``<zip>.md5`` (``MD5 (ml-20m.zip) = <hex>`` or ``<hex>  ml-20m.zip``):
    the one 32-character hex word."""
    words = [w for w in md5_text.replace("=", " ").split()
             if len(w) == 32 and all(c in "0123456789abcdefABCDEF" for c in w)]
    if not words:
        raise PngnnError(f"{url}.md5 holds no MD5 digest", "download again later, or put the files in place by hand")
    return words[0].lower()


def download(name: str, data_dir: Path, url: str | None = None) -> None:
    """Fetch the GroupLens zip (pooch) and extract the dataset's files into the cache.

    Files are extracted to a temporary folder and verified before they are moved
    into the cache, so a failed or corrupt download never leaves a bad cache behind. A
    dataset without shipped sums is checked against the MD5 GroupLens publishes next to the
    zip (pooch's known hash), and the SHA-256 of what was extracted is pinned beside the files
    (``SHA256SUMS``)."""
    url = url or GROUPLENS_URL.format(name=name)
    target = data_dir / folder(name)
    with tempfile.TemporaryDirectory() as tmp:
        known = None
        if name not in SHIPPED:
            md5_file = _fetch(f"{url}.md5", name, target, Path(tmp))
            known = "md5:" + published_md5(md5_file.read_text("ascii", "replace"), url)
        archive = _fetch(url, name, target, Path(tmp), known)
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile:
            raise PngnnError(f"{url} is not a zip archive", "download it again, or put the files in place by "
                             "hand") from None
        pins = []
        with zf:
            for fname in FILES[name].values():
                member = f"{folder(name)}/{fname}"
                try:
                    (Path(tmp) / fname).write_bytes(zf.read(member))
                except KeyError:
                    raise PngnnError(f"{url} holds no {member}", f"put the files in {target} by hand") from None
                if name in SHIPPED:
                    verify_file(Path(tmp) / fname, member)
                else:
                    pins.append(f"{sha256_file(Path(tmp) / fname)}  {fname}\n")
        if pins:
            (Path(tmp) / PIN_FILE).write_text("".join(pins))
        target.mkdir(parents=True, exist_ok=True)
        for fname in [*FILES[name].values(), *([PIN_FILE] if pins else [])]:
            shutil.move(str(Path(tmp) / fname), target / fname)


def ensure_files(name: str, data_dir: Path, allow_download: bool = True) -> dict[str, Path]:
    """Return verified paths of the dataset's files, downloading what is missing."""
    check_dataset(name)
    base = data_dir / folder(name)
    paths = {kind: base / fname for kind, fname in FILES[name].items()}
    missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        if not allow_download:
            raise PngnnError(
                f"{missing[0]} is missing; set PNGNN_DATA_DIR to a folder holding {folder(name)}/ (as {name}.zip "
                "unpacks), or drop --no-download to fetch it from GroupLens (needs internet)"
            )
        download(name, data_dir)
    sums = known_sums(name, data_dir)
    fix = "delete it so it is downloaded again"
    if name not in SHIPPED:
        files = " ".join(sorted(FILES[name].values()))
        unpinned = [p for p in paths.values() if f"{folder(name)}/{p.name}" not in sums]
        if unpinned:
            raise UserError(
                f"no SHA-256 pinned for {unpinned[0]} (pngnn ships no sums for {name}: pin the files you downloaded)",
                f"check {name}.zip against GroupLens' {name}.zip.md5, then run: cd {base} && sha256sum {files} > "
                f"{PIN_FILE}")
        fix = f"restore the file you pinned in {pin_path(name, data_dir)}, or pin the new one"
    for kind, path in paths.items():
        verify_file(path, f"{folder(name)}/{FILES[name][kind]}", sums, fix)
    return paths


def _decode(data: bytes, encoding: str) -> str:
    """``latin-1``, or ``utf-8`` falling back to Latin-1 for a file that is not valid UTF-8
    (accented Latin-1 text is almost never valid UTF-8, so the guess is safe both ways)."""
    if encoding == "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1")


def _lines(path: Path, encoding: str = "latin-1") -> pl.Series:
    text = _decode(path.read_bytes(), encoding)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return pl.Series("line", lines, dtype=pl.String).str.strip_chars_end("\r")


def _ascii_lines(path: Path) -> pl.Series:
    """The lines of a ratings file (ASCII digits and separators), split by Polars' reader: no
    Python string per line, which for ML-20M's 20M lines is gigabytes. A byte that is not UTF-8
    becomes U+FFFD and fails the strict casts with its line number."""
    try:
        lines = pl.read_csv(path, has_header=False, separator="\x1f", quote_char=None, new_columns=["line"],
                            schema={"line": pl.String}, encoding="utf8-lossy")["line"]
    except pl.exceptions.PolarsError:  # e.g. a stray 0x1f: the slow path reads any bytes
        return _lines(path)
    return lines.fill_null("").str.strip_chars_end("\r")


def split_fields(path: Path, sep: str, n_fields: int, names: list[str], lines: pl.Series | None = None,
                 first_line: int = 1) -> pl.DataFrame:
    """Split each line on ``sep`` into exactly ``n_fields`` string columns (vectorised).

    ``lines``: the file's lines when already read; ``first_line``: the line number of the first
    of them (2 after a header)."""
    lines = _lines(path) if lines is None else lines
    parts = lines.str.split(sep)
    counts = parts.list.len()
    bad = (counts != n_fields).arg_true()
    if len(bad):
        i = int(bad[0])
        raise PngnnError(
            f"malformed line {i + first_line} in {path}: expected {n_fields} fields separated by {sep!r}, "
            f"got {int(counts[i])}: {lines[i][:60]!r}; restore the original file"
        )
    frame = pl.DataFrame({"parts": parts}).select(
        [pl.col("parts").list.get(k).alias(names[k]) for k in range(n_fields)]
    )
    return frame


def cast_strict(frame: pl.DataFrame, path: Path, casts: dict[str, type[pl.DataType]],
                first_line: int = 1) -> pl.DataFrame:
    """Cast columns, reporting the first value that does not parse with its line number."""
    out = frame
    for col, dtype in casts.items():
        casted = frame[col].str.strip_chars().cast(dtype, strict=False)
        bad = (casted.is_null() & frame[col].is_not_null()).arg_true()
        if len(bad):
            i = int(bad[0])
            raise PngnnError(
                f"malformed line {i + first_line} in {path}: column '{col}' value {frame[col][i]!r} is not "
                f"{dtype}; restore the original file"
            )
        out = out.with_columns(casted.alias(col))
    return out


_RATING_CASTS: dict[str, type[pl.DataType]] = {"user_id": pl.Int32, "item_id": pl.Int32, "rating": pl.Float32,
                                               "ts": pl.Int64}


def parse_ratings(path: Path, sep: str, header: str | None = None) -> pl.DataFrame:
    """``user_id, item_id, rating, ts`` from a ratings file whose fields are separated by ``sep``;
    ``header``: the first line the file must have (ML-20M/25M's CSV), skipped."""
    lines = _ascii_lines(path)
    first_line = 1
    if header is not None:
        if lines.is_empty() or lines[0].lstrip("\ufeff") != header:
            got = lines[0][:60] if len(lines) else ""
            raise PngnnError(f"line 1 of {path} is {got!r}, not the header {header!r}",
                             "restore the original file (this format starts with that header)")
        lines, first_line = lines.slice(1), 2
    raw = split_fields(path, sep, 4, ["user_id", "item_id", "rating", "ts"], lines, first_line)
    df = cast_strict(raw, path, _RATING_CASTS, first_line)
    out_of_range = ((df["rating"] < 0.5) | (df["rating"] > 5)).arg_true()
    if len(out_of_range):
        i = int(out_of_range[0])
        raise PngnnError(
            f"malformed line {i + first_line} in {path}: rating {df['rating'][i]} is outside 0.5-5; "
            f"restore the original file"
        )
    if df.is_empty():
        raise PngnnError(f"{path} holds no ratings; restore the original file")
    return df


# The release year in parentheses at the end of the title, possibly followed by other
# parenthesised markers such as "(V)" (ML-100K item 1412: "... (1995) (V)").
_YEAR = r"\((\d{4})\)(?:\s*\([^()]*\))*\s*$"


def _items_frame(df: pl.DataFrame) -> pl.DataFrame:
    """item_id, title, year, genres (a list; ML-10M+'s "(no genres listed)" is the empty list)."""
    return df.select(
        "item_id",
        pl.col("title"),
        pl.col("title").str.extract(_YEAR, 1).cast(pl.Int32).alias("year"),
        pl.col("genres").str.split("|").list.filter(pl.element() != NO_GENRES).alias("genres"),
    )


def parse_items_1m(path: Path, encoding: str = "latin-1") -> pl.DataFrame:
    """``movies.dat`` (ML-1M, Latin-1; ML-10M, ``encoding="utf-8"``): ``id::title::genres``."""
    raw = split_fields(path, "::", 3, ["item_id", "title", "genres"], _lines(path, encoding))
    return _items_frame(cast_strict(raw, path, {"item_id": pl.Int32}))


def parse_items_csv(path: Path) -> pl.DataFrame:
    """``movies.csv`` (ML-20M, ML-25M): a header, then ``movieId,title,genres`` with titles that
    hold a comma quoted. Read by Polars' CSV reader, which knows the quoting."""
    data = _decode(path.read_bytes(), "utf-8").encode("utf-8")
    try:
        raw = pl.read_csv(io.BytesIO(data), has_header=True, infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise PngnnError(f"malformed {path}: {first}", "restore the original file") from None
    if raw.columns != MOVIES_CSV_COLUMNS:
        raise PngnnError(f"line 1 of {path} has columns {raw.columns}, not {MOVIES_CSV_COLUMNS}",
                         "restore the original file (ML-20M/25M's movies.csv)")
    raw = raw.rename({"movieId": "item_id"}).with_columns(pl.col("title").str.strip_chars())
    missing = (raw["title"].is_null() | raw["genres"].is_null()).arg_true()
    if len(missing):
        raise PngnnError(f"malformed line {int(missing[0]) + 2} in {path}: a title or genres field is empty",
                         "restore the original file")
    return _items_frame(cast_strict(raw, path, {"item_id": pl.Int32}, first_line=2))


def parse_items_100k(path: Path, genre_path: Path) -> pl.DataFrame:
    genre_names = [line.split("|")[0] for line in _lines(genre_path).to_list() if line.strip()]
    n_flags = len(genre_names)
    names = ["item_id", "title", "release", "video_release", "url"] + [f"g{k}" for k in range(n_flags)]
    raw = split_fields(path, "|", 5 + n_flags, names)
    df = cast_strict(raw, path, {"item_id": pl.Int32})
    genre_lists = pl.concat_list(
        [pl.when(pl.col(f"g{k}") == "1").then(pl.lit(g)).otherwise(None) for k, g in enumerate(genre_names)]
    ).list.drop_nulls()
    return df.select(
        "item_id",
        "title",
        pl.col("title").str.extract(_YEAR, 1).cast(pl.Int32).alias("year"),
        genre_lists.alias("genres"),
    )


# ML-10M and later ship no user file: their users are ids only (demographics NULL in DuckDB).
USER_SCHEMA: dict[str, type[pl.DataType]] = {"user_id": pl.Int32, "gender": pl.String, "age": pl.Int32,
                                             "occupation": pl.String, "zip": pl.String}


def parse_users(path: Path, name: str) -> pl.DataFrame:
    if name == "ml-1m":
        raw = split_fields(path, "::", 5, ["user_id", "gender", "age", "occupation", "zip"])
    else:
        raw = split_fields(path, "|", 5, ["user_id", "age", "gender", "occupation", "zip"])
    df = cast_strict(raw, path, {"user_id": pl.Int32, "age": pl.Int32})
    return df.select("user_id", "gender", "age", pl.col("occupation").cast(pl.String), "zip")


def load(name: str, data_dir: Path, allow_download: bool = True) -> RawDataset:
    """Verify (or fetch) and parse one MovieLens dataset."""
    paths = ensure_files(name, data_dir, allow_download)
    users = pl.DataFrame(schema=USER_SCHEMA)
    if name == "ml-1m":
        ratings = parse_ratings(paths["ratings"], "::")
        items = parse_items_1m(paths["items"])
    elif name == "ml-100k":
        ratings = parse_ratings(paths["ratings"], "\t")
        items = parse_items_100k(paths["items"], paths["genres"])
    elif name == "ml-10m":
        ratings = parse_ratings(paths["ratings"], "::")
        items = parse_items_1m(paths["items"], encoding="utf-8")
    else:  # ml-20m, ml-25m
        ratings = parse_ratings(paths["ratings"], ",", header=RATINGS_CSV_HEADER)
        items = parse_items_csv(paths["items"])
    if "users" in paths:
        users = parse_users(paths["users"], name)
    return RawDataset(name=name, ratings=ratings, items=items, users=users,
                      checksum=str(dataset_checksum(name, known_sums(name, data_dir))))
