"""Download, verify and parse the MovieLens originals.

Files live in a cache folder (``PNGNN_DATA_DIR``) laid out as GroupLens ships them
(``ml-1m/ratings.dat``, ``ml-100k/u.data`` ...). A file already in the cache is used
without network; a missing one is fetched from GroupLens. Either way every file is
checked against the SHA-256 sums shipped with the package, so a truncated or tampered
file is caught before it reaches DuckDB.

Parsing is vectorised with Polars: the file is decoded as Latin-1 (MovieLens titles
are Latin-1), split into lines, and each column is cast strictly. The first bad line
is reported with its file and line number.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pngnn.config import check_dataset
from pngnn.errors import PngnnError, TransientError

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
_SUMS_FILE = Path(__file__).with_name("SHA256SUMS")

FILES: dict[str, dict[str, str]] = {
    "ml-1m": {"ratings": "ratings.dat", "items": "movies.dat", "users": "users.dat"},
    "ml-100k": {"ratings": "u.data", "items": "u.item", "users": "u.user", "genres": "u.genre"},
}


@dataclass(frozen=True)
class RawDataset:
    """Parsed MovieLens tables, ready for ingestion."""

    name: str
    ratings: pl.DataFrame  # user_id, item_id, rating, ts
    items: pl.DataFrame  # item_id, title, year, genres
    users: pl.DataFrame  # user_id, gender, age, occupation, zip
    checksum: str  # sha256 over the sums of the dataset's files: one id for the whole dataset


def expected_sums() -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in _SUMS_FILE.read_text().splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            sums[rel.strip()] = digest
    return sums


def expected_checksum(name: str) -> str | None:
    """The dataset's checksum (``RawDataset.checksum``) from the published sums, without reading
    its files; None for an unknown dataset."""
    files = FILES.get(name)
    if files is None:
        return None
    sums = expected_sums()
    return hashlib.sha256("".join(sums[f"{name}/{f}"] for f in sorted(files.values())).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: Path, rel: str) -> str:
    """Check one cached file against its published SHA-256; return the digest."""
    want = expected_sums().get(rel)
    if want is None:
        raise PngnnError(f"no SHA-256 known for '{rel}'; add it to {_SUMS_FILE}")
    got = sha256_file(path)
    if got != want:
        raise PngnnError(
            f"checksum mismatch for {path} (sha256 {got[:12]}..., expected {want[:12]}...): "
            f"the file is truncated or altered; delete it so it is downloaded again"
        )
    return got


def download(name: str, data_dir: Path, url: str | None = None) -> None:
    """Fetch the GroupLens zip and extract the dataset's files into the cache.

    Files are extracted to a temporary folder and verified before they are moved
    into the cache, so a failed or corrupt download never leaves a bad cache behind.
    """
    url = url or GROUPLENS_URL.format(name=name)
    target = data_dir / name
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            payload = resp.read()
    except OSError as exc:
        raise TransientError(f"cannot download {name} from {url} ({exc})",
                             f"put the files in {target} or set PNGNN_DATA_DIR") from None
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(io.BytesIO(payload)) as zf:
        for fname in FILES[name].values():
            member = f"{name}/{fname}"
            (Path(tmp) / fname).write_bytes(zf.read(member))
            verify_file(Path(tmp) / fname, member)
        target.mkdir(parents=True, exist_ok=True)
        for fname in FILES[name].values():
            shutil.move(str(Path(tmp) / fname), target / fname)


def ensure_files(name: str, data_dir: Path, allow_download: bool = True) -> dict[str, Path]:
    """Return verified paths of the dataset's files, downloading what is missing."""
    check_dataset(name)
    paths = {kind: data_dir / name / fname for kind, fname in FILES[name].items()}
    missing = [p for p in paths.values() if not p.is_file()]
    if missing:
        if not allow_download:
            raise PngnnError(
                f"{missing[0]} is missing; set PNGNN_DATA_DIR to a folder holding {name}/, or drop --no-download "
                "to fetch it"
            )
        download(name, data_dir)
    for kind, path in paths.items():
        verify_file(path, f"{name}/{FILES[name][kind]}")
    return paths


def _lines(path: Path) -> pl.Series:
    text = path.read_bytes().decode("latin-1")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return pl.Series("line", lines, dtype=pl.String).str.strip_chars_end("\r")


def split_fields(path: Path, sep: str, n_fields: int, names: list[str]) -> pl.DataFrame:
    """Split each line on ``sep`` into exactly ``n_fields`` string columns (vectorised)."""
    lines = _lines(path)
    parts = lines.str.split(sep)
    counts = parts.list.len()
    bad = (counts != n_fields).arg_true()
    if len(bad):
        i = int(bad[0])
        raise PngnnError(
            f"malformed line {i + 1} in {path}: expected {n_fields} fields separated by {sep!r}, "
            f"got {int(counts[i])}: {lines[i][:60]!r}; restore the original file"
        )
    frame = pl.DataFrame({"parts": parts}).select(
        [pl.col("parts").list.get(k).alias(names[k]) for k in range(n_fields)]
    )
    return frame


def cast_strict(frame: pl.DataFrame, path: Path, casts: dict[str, type[pl.DataType]]) -> pl.DataFrame:
    """Cast columns, reporting the first value that does not parse with its line number."""
    out = frame
    for col, dtype in casts.items():
        casted = frame[col].str.strip_chars().cast(dtype, strict=False)
        bad = (casted.is_null() & frame[col].is_not_null()).arg_true()
        if len(bad):
            i = int(bad[0])
            raise PngnnError(
                f"malformed line {i + 1} in {path}: column '{col}' value {frame[col][i]!r} is not "
                f"{dtype}; restore the original file"
            )
        out = out.with_columns(casted.alias(col))
    return out


def parse_ratings(path: Path, sep: str) -> pl.DataFrame:
    raw = split_fields(path, sep, 4, ["user_id", "item_id", "rating", "ts"])
    df = cast_strict(raw, path, {"user_id": pl.Int32, "item_id": pl.Int32, "rating": pl.Float32, "ts": pl.Int64})
    out_of_range = ((df["rating"] < 0.5) | (df["rating"] > 5)).arg_true()
    if len(out_of_range):
        i = int(out_of_range[0])
        raise PngnnError(
            f"malformed line {i + 1} in {path}: rating {df['rating'][i]} is outside 0.5-5; "
            f"restore the original file"
        )
    if df.is_empty():
        raise PngnnError(f"{path} holds no ratings; restore the original file")
    return df


# The release year in parentheses at the end of the title, possibly followed by other
# parenthesised markers such as "(V)" (ML-100K item 1412: "... (1995) (V)").
_YEAR = r"\((\d{4})\)(?:\s*\([^()]*\))*\s*$"


def parse_items_1m(path: Path) -> pl.DataFrame:
    raw = split_fields(path, "::", 3, ["item_id", "title", "genres"])
    df = cast_strict(raw, path, {"item_id": pl.Int32})
    return df.select(
        "item_id",
        pl.col("title"),
        pl.col("title").str.extract(_YEAR, 1).cast(pl.Int32).alias("year"),
        pl.col("genres").str.split("|").alias("genres"),
    )


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
    if name == "ml-1m":
        ratings = parse_ratings(paths["ratings"], "::")
        items = parse_items_1m(paths["items"])
    else:
        ratings = parse_ratings(paths["ratings"], "\t")
        items = parse_items_100k(paths["items"], paths["genres"])
    users = parse_users(paths["users"], name)
    return RawDataset(name=name, ratings=ratings, items=items, users=users, checksum=str(expected_checksum(name)))
