"""ML-10M, ML-20M and ML-25M: their formats, the pinned-checksum policy, the download check and
the rule for a rating equal to the threshold, on small fixture files written here and laid out
as the real archives unpack (no download: a local zip stands in for GroupLens)."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from pngnn.core.constants import LIKE_THRESHOLD
from pngnn.core.errors import PngnnError, UserError
from pngnn.data import datasets
from pngnn.data.ingest import ingest
from pngnn.data.split import Interactions, create_split, load_split
from pngnn.data.store import Store
from pngnn.evaluation.evaluate import evaluate
from tests.servers import files_over_http, free_port

# ML-10M's files: "::"-separated, half stars, UTF-8 titles, one film without genres.
ML10M_RATINGS = [
    (1, 122, 5.0), (1, 185, 3.5), (1, 231, 0.5), (1, 292, 4.5),
    (2, 122, 3.5), (2, 185, 4.0), (2, 329, 2.5),
    (3, 231, 3.5), (3, 292, 5.0), (3, 329, 1.0), (3, 122, 4.5),
    (4, 185, 3.0), (4, 329, 3.5), (4, 292, 4.0), (4, 231, 2.0),
]
ML10M_MOVIES = [
    "122::Boomerang (1992)::Comedy|Romance",
    "185::Net, The (1995)::Action|Crime|Thriller",
    "231::Dumb & Dumber (1994)::Comedy",
    "292::Am\u00e9lie (Fabuleux destin d'Am\u00e9lie Poulain, Le) (2001)::Comedy|Romance",
    "329::Pull My Daisy (1958)::(no genres listed)",
]
# ML-20M/25M's files: CSV with headers; titles with a comma are quoted, inner quotes doubled.
ML20M_MOVIES = (
    "movieId,title,genres\n"
    '1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n'
    '11,"American President, The (1995)",Comedy|Drama|Romance\n'
    '3,"""Great Performances"" Cats (1998)",Musical\n'
    "4,Babylon 5 ,(no genres listed)\n"
)
ML20M_RATINGS = [(1, 1, 3.5), (1, 11, 4.0), (2, 1, 5.0), (2, 3, 0.5), (3, 4, 3.0), (3, 11, 4.5)]


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, f"message is not one line: {msg!r}"
    return msg


def write_ml10m(root: Path) -> Path:
    folder = root / "ml-10M100K"  # the folder ml-10m.zip unpacks to
    folder.mkdir(parents=True)
    (folder / "ratings.dat").write_text("".join(f"{u}::{i}::{r:g}::{900000000 + k}\n"
                                                for k, (u, i, r) in enumerate(ML10M_RATINGS)))
    (folder / "movies.dat").write_bytes(("\n".join(ML10M_MOVIES) + "\n").encode("utf-8"))
    return folder


def write_ml20m(root: Path, name: str = "ml-20m") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{i},{r:.1f},{1100000000 + k}\n" for k, (u, i, r) in enumerate(ML20M_RATINGS)))
    (folder / "movies.csv").write_bytes(ML20M_MOVIES.encode("utf-8"))
    return folder


def pin(folder: Path, *files: str) -> None:
    """What the error tells the user to run: ``sha256sum FILES > SHA256SUMS`` in the folder."""
    out = subprocess.run(["sha256sum", *files], cwd=folder, capture_output=True, text=True, check=True).stdout
    (folder / "SHA256SUMS").write_text(out)


# --- the checksum policy: no shipped sums, the user pins what they downloaded ------------------


@pytest.mark.parametrize(("name", "writer", "files"), [
    ("ml-10m", write_ml10m, "movies.dat ratings.dat"),
    ("ml-20m", write_ml20m, "movies.csv ratings.csv"),
])
def test_unpinned_files_are_refused_with_the_pin_command(tmp_path, name, writer, files):
    folder = writer(tmp_path)
    with pytest.raises(UserError) as exc:
        datasets.load(name, tmp_path, allow_download=False)
    msg = one_line(exc)
    assert f"no SHA-256 pinned for {folder}" in msg
    assert f"cd {folder} && sha256sum {files} > SHA256SUMS" in msg
    assert f"{name}.zip.md5" in msg
    assert datasets.expected_checksum(name, tmp_path) is None


def test_missing_files_name_the_archive_folder_and_the_offline_download(tmp_path):
    with pytest.raises(PngnnError) as exc:
        datasets.load("ml-10m", tmp_path, allow_download=False)
    msg = one_line(exc)
    assert str(tmp_path / "ml-10M100K" / "ratings.dat") in msg
    assert "PNGNN_DATA_DIR" in msg and "needs internet" in msg


def test_a_changed_file_after_pinning_is_caught(tmp_path):
    folder = write_ml20m(tmp_path)
    pin(folder, "ratings.csv", "movies.csv")
    assert datasets.load("ml-20m", tmp_path, allow_download=False).ratings.height == len(ML20M_RATINGS)
    data = (folder / "ratings.csv").read_bytes()
    (folder / "ratings.csv").write_bytes(data[: len(data) // 2])
    with pytest.raises(PngnnError) as exc:
        datasets.load("ml-20m", tmp_path, allow_download=False)
    msg = one_line(exc)
    assert "checksum mismatch" in msg and str(folder / "ratings.csv") in msg
    assert str(folder / "SHA256SUMS") in msg  # the fix names the pin


# --- parsing --------------------------------------------------------------------------------


def test_ml10m_fixture_parses_half_stars_utf8_and_no_genres(tmp_path):
    folder = write_ml10m(tmp_path)
    pin(folder, "ratings.dat", "movies.dat")
    raw = datasets.load("ml-10m", tmp_path, allow_download=False)
    assert raw.ratings.height == len(ML10M_RATINGS)
    assert raw.ratings["rating"].to_list() == [r for _, _, r in ML10M_RATINGS]
    assert raw.ratings["ts"].to_list()[:2] == [900000000, 900000001]
    items = {row["item_id"]: row for row in raw.items.iter_rows(named=True)}
    assert items[292]["title"] == "Am\u00e9lie (Fabuleux destin d'Am\u00e9lie Poulain, Le) (2001)"
    assert items[292]["year"] == 2001
    assert items[329]["genres"] == []  # "(no genres listed)"
    assert items[185]["genres"] == ["Action", "Crime", "Thriller"]
    assert raw.users.height == 0 and raw.users.columns == ["user_id", "gender", "age", "occupation", "zip"]
    sums = {f"ml-10M100K/{f}": hashlib.sha256((folder / f).read_bytes()).hexdigest()
            for f in ("ratings.dat", "movies.dat")}
    assert raw.checksum == datasets.dataset_checksum("ml-10m", sums)
    assert raw.checksum == datasets.expected_checksum("ml-10m", tmp_path)


def test_ml10m_latin1_titles_still_decode(tmp_path):
    path = tmp_path / "movies.dat"
    path.write_bytes("1::Caf\u00e9 au Lait (1993)::Comedy\n".encode("latin-1"))  # not valid UTF-8
    assert datasets.parse_items_1m(path, encoding="utf-8")["title"].to_list() == ["Caf\u00e9 au Lait (1993)"]


@pytest.mark.parametrize("name", ["ml-20m", "ml-25m"])
def test_csv_fixture_parses_quoted_titles(tmp_path, name):
    folder = write_ml20m(tmp_path, name)
    pin(folder, "ratings.csv", "movies.csv")
    raw = datasets.load(name, tmp_path, allow_download=False)
    assert raw.ratings.rows() == [(u, i, r, 1100000000 + k) for k, (u, i, r) in enumerate(ML20M_RATINGS)]
    items = {row["item_id"]: row for row in raw.items.iter_rows(named=True)}
    assert items[11]["title"] == "American President, The (1995)"
    assert items[11]["genres"] == ["Comedy", "Drama", "Romance"]
    assert items[3]["title"] == '"Great Performances" Cats (1998)'
    assert items[3]["year"] == 1998
    assert items[4]["title"] == "Babylon 5" and items[4]["year"] is None and items[4]["genres"] == []
    assert raw.items.height == 4


def test_csv_ratings_header_and_line_numbers(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,1,4.0,10\n1,2,x,11\n")
    with pytest.raises(PngnnError) as exc:
        datasets.parse_ratings(path, ",", header=datasets.RATINGS_CSV_HEADER)
    msg = one_line(exc)
    assert "line 3" in msg and "'x'" in msg and str(path) in msg  # the header counts as line 1
    path.write_text("1,1,4.0,10\n")
    with pytest.raises(PngnnError, match="not the header") as exc:
        datasets.parse_ratings(path, ",", header=datasets.RATINGS_CSV_HEADER)
    one_line(exc)
    path.write_text("userId,movieId,rating,timestamp\n1,1,4.0,10\n1,2,4.0\n")
    with pytest.raises(PngnnError, match=r"malformed line 3 in .*expected 4 fields") as exc:
        datasets.parse_ratings(path, ",", header=datasets.RATINGS_CSV_HEADER)
    one_line(exc)


def test_csv_movies_with_other_columns_is_refused(tmp_path):
    path = tmp_path / "movies.csv"
    path.write_text("id,name\n1,Toy Story (1995)\n")
    with pytest.raises(PngnnError, match="not \\['movieId', 'title', 'genres'\\]") as exc:
        datasets.parse_items_csv(path)
    one_line(exc)


# --- download: the zip checked against GroupLens' .md5, then pinned ---------------------------


def zip_like_grouplens(src: Path, zip_path: Path, member_folder: str, md5: str | None = None) -> None:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for f in sorted(src.iterdir()):
            zf.writestr(f"{member_folder}/{f.name}", f.read_bytes())
    digest = md5 or hashlib.md5(zip_path.read_bytes()).hexdigest()
    Path(f"{zip_path}.md5").write_text(f"MD5 ({zip_path.name}) = {digest}\n")  # GroupLens' md5 -r form


def test_download_checks_the_md5_and_pins_what_it_extracted(tmp_path, monkeypatch):
    src = write_ml10m(tmp_path / "src")
    zip_like_grouplens(src, tmp_path / "ml-10m.zip", "ml-10M100K")
    cache = tmp_path / "cache"
    with files_over_http(tmp_path) as base:
        monkeypatch.setattr(datasets, "GROUPLENS_URL", f"{base}/{{name}}.zip")
        raw = datasets.load("ml-10m", cache, allow_download=True)
    assert raw.ratings.height == len(ML10M_RATINGS)
    pinned = datasets.pinned_sums("ml-10m", cache)
    assert pinned == {f"ml-10M100K/{f}": hashlib.sha256((src / f).read_bytes()).hexdigest()
                      for f in ("ratings.dat", "movies.dat")}
    assert raw.checksum == datasets.expected_checksum("ml-10m", cache)


def test_a_download_that_fails_its_md5_leaves_no_cache(tmp_path):
    src = write_ml20m(tmp_path / "src")
    zip_like_grouplens(src, tmp_path / "ml-20m.zip", "ml-20m", md5="0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(PngnnError, match="MD5 mismatch") as exc, files_over_http(tmp_path) as base:
        datasets.download("ml-20m", cache, url=f"{base}/ml-20m.zip")
    one_line(exc)
    assert not (cache / "ml-20m").exists()


def test_an_unreachable_download_names_the_folder_and_the_setting(tmp_path):
    with pytest.raises(PngnnError, match="cannot download ml-25m") as exc:
        datasets.download("ml-25m", tmp_path, url=f"http://127.0.0.1:{free_port()}/nothing.zip")
    msg = one_line(exc)
    assert str(tmp_path / "ml-25m") in msg and "PNGNN_DATA_DIR" in msg


# --- DuckDB: real files, the checksum recorded -------------------------------------------------


def test_ingest_ml20m_fixture_into_duckdb(tmp_path):
    folder = write_ml20m(tmp_path / "data")
    pin(folder, "ratings.csv", "movies.csv")
    raw = datasets.load("ml-20m", tmp_path / "data", allow_download=False)
    with Store(tmp_path / "db.duckdb") as store:
        result = ingest(store, raw)
        assert (result.n_ratings, result.n_users, result.n_items, result.skipped) == (6, 3, 4, False)
        stored = store.query_sql("SELECT checksum FROM datasets WHERE dataset = 'ml-20m'")["checksum"][0]
        assert stored == raw.checksum == datasets.expected_checksum("ml-20m", tmp_path / "data")
        users = store.query_sql("SELECT user_id, user_idx, gender FROM users WHERE dataset = 'ml-20m' "
                                "ORDER BY user_id")
        assert users.rows() == [(1, 0, None), (2, 1, None), (3, 2, None)]  # ids only: no user file
        title = store.query_sql("SELECT title FROM items WHERE dataset = 'ml-20m' AND item_id = 11")["title"][0]
        assert title == "American President, The (1995)"
        assert ingest(store, raw).skipped


# --- the threshold: 3.5 is not "liked" ----------------------------------------------------------


def test_a_rating_equal_to_the_threshold_is_disliked_in_train_and_not_ground_truth(tmp_path):
    assert LIKE_THRESHOLD == 3.5
    folder = write_ml10m(tmp_path / "data")
    pin(folder, "ratings.dat", "movies.dat")
    raw = datasets.load("ml-10m", tmp_path / "data", allow_download=False)
    with Store(tmp_path / "db.duckdb") as store:
        ingest(store, raw)
        create_split(store, "ml-10m", 1)
        split = load_split(store, "ml-10m", 1)
    n_35 = sum(r == 3.5 for _, _, r in ML10M_RATINGS)
    both = split.train.concat(split.test)
    assert int((both.ratings == 3.5).sum()) == n_35 == 4  # every 3.5 survived ingest and split
    pos, neg = split.train.positive(LIKE_THRESHOLD), split.train.negative(LIKE_THRESHOLD)
    assert pos.ratings.min() > 3.5
    assert int((neg.ratings == 3.5).sum()) == int((split.train.ratings == 3.5).sum()) > 0

    # Evaluation: user 0's test items are 0 (3.5) and 1 (4.0); user 1's only test item is a 3.5.
    test = Interactions(np.array([0, 0, 1]), np.array([0, 1, 2]), np.array([3.5, 4.0, 3.5], dtype=np.float32))
    seen = Interactions(np.array([0, 1]), np.array([3, 3]), np.array([5.0, 5.0], dtype=np.float32))
    order = torch.tensor([4.0, 3.0, 2.0, 1.0])  # ranks item 0 first, then 1, 2; item 3 is seen

    def score(users: torch.Tensor) -> torch.Tensor:
        return order.expand(len(users), -1).clone()

    m = evaluate(score, 4, seen, test, ks=(1, 2))
    assert m["n_eval_users"] == 1.0  # user 1 has no test rating above 3.5: skipped
    assert m["precision@1"] == 0.0  # the top item was rated 3.5: not a hit
    assert m["recall@2"] == 1.0 and m["precision@2"] == 0.5  # the 4.0 is the only relevant item


def test_parsed_frames_keep_ratings_as_float32_half_stars(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::2::3.5::10\n1::3::0.5::11\n")
    df = datasets.parse_ratings(path, "::")
    assert df.schema["rating"] == pl.Float32
    assert df["rating"].to_list() == [3.5, 0.5]
