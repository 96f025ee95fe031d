"""Parsing, verification and error messages of the MovieLens loader."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import polars as pl
import pytest

from pngnn.core import config
from pngnn.core.errors import PngnnError
from pngnn.data import datasets
from tests.servers import files_over_http, free_port

ML100K_FILES = ["u.data", "u.item", "u.user", "u.genre"]


def copy_ml100k(src_dir: Path, dst_root: Path) -> Path:
    """Copy the files the loader reads into ``dst_root/ml-100k`` (writable copies)."""
    dst = dst_root / "ml-100k"
    dst.mkdir(parents=True)
    for name in ML100K_FILES:
        shutil.copyfile(src_dir / "ml-100k" / name, dst / name)  # copyfile: no read-only mode bits
    return dst


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, f"message is not one line: {msg!r}"
    return msg


# --- ML-100K, parsed from the shared cache ----------------------------------------------------


def test_ml100k_counts(ml100k_raw):
    assert ml100k_raw.name == "ml-100k"
    assert ml100k_raw.ratings.height == 100_000
    assert ml100k_raw.ratings["user_id"].n_unique() == 943
    assert ml100k_raw.ratings["item_id"].n_unique() == 1682
    assert ml100k_raw.items.height == 1682
    assert ml100k_raw.users.height == 943
    assert ml100k_raw.ratings.columns == ["user_id", "item_id", "rating", "ts"]
    assert set(ml100k_raw.ratings["rating"].unique().to_list()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert len(ml100k_raw.checksum) == 64


def test_ml100k_toy_story(ml100k_raw):
    row = ml100k_raw.items.filter(pl.col("item_id") == 1).row(0, named=True)
    assert row["title"] == "Toy Story (1995)"
    assert row["year"] == 1995
    # u.item line 1 has genre flags at positions 3, 4, 5, which u.genre names
    # Animation, Children's, Comedy.
    assert row["genres"] == ["Animation", "Children's", "Comedy"]


def test_ml100k_years_parsed_for_almost_all_titles(ml100k_raw):
    years = ml100k_raw.items["year"]
    # every year that was parsed is a plausible release year
    assert years.drop_nulls().min() >= 1900
    assert years.drop_nulls().max() <= 2000
    # ML-100K has a single title without a year: item 267, "unknown"
    missing = ml100k_raw.items.filter(pl.col("year").is_null())
    assert missing["item_id"].to_list() == [267]
    # item 1412 carries a trailing marker after its year: "... Giving (1995) (V)"
    assert ml100k_raw.items.filter(pl.col("item_id") == 1412)["year"][0] == 1995


def test_ml100k_latin1_title(ml100k_raw):
    # u.item line 543 holds the byte 0xE9 (Latin-1 'é') in "Misérables"
    title = ml100k_raw.items.filter(pl.col("item_id") == 543)["title"][0]
    assert title == "Mis\u00e9rables, Les (1995)"
    assert "\ufffd" not in "".join(ml100k_raw.items["title"].to_list())  # no replacement characters


def test_ml100k_users(ml100k_raw):
    row = ml100k_raw.users.filter(pl.col("user_id") == 1).row(0, named=True)
    # u.user line 1: "1|24|M|technician|85711"
    assert row == {"user_id": 1, "gender": "M", "age": 24, "occupation": "technician", "zip": "85711"}


def test_checksum_is_stable_and_depends_on_the_sums(ml100k_raw, data_dir):
    again = datasets.load("ml-100k", data_dir, allow_download=False)
    assert again.checksum == ml100k_raw.checksum


# --- small fixtures written into tmp_path -----------------------------------------------------


def test_latin1_fixture_1m_items(tmp_path):
    path = tmp_path / "movies.dat"
    lines = [
        "1::Caf\u00e9 au Lait (1993)::Comedy|Drama",
        "2::\u00c1 k\u00f6ldum klaka (Cold Fever) (1994)::Comedy",
        "3::No Year::Documentary",
        "4::Nosferatu (Nosferatu, eine Symphonie des Grauens) (1922)::Horror",
        "5::Some Video (1995) (V)::Children's",
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    items = datasets.parse_items_1m(path)
    assert items["title"].to_list()[:3] == [
        "Caf\u00e9 au Lait (1993)",
        "\u00c1 k\u00f6ldum klaka (Cold Fever) (1994)",
        "No Year",
    ]
    assert items["year"].to_list() == [1993, 1994, None, 1922, 1995]
    assert items["genres"].to_list() == [["Comedy", "Drama"], ["Comedy"], ["Documentary"], ["Horror"], ["Children's"]]


def test_parse_ratings_fixture_with_crlf(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_bytes(b"1::10::5::100\r\n2::20::3::200\r\n")
    df = datasets.parse_ratings(path, "::")
    assert df["user_id"].to_list() == [1, 2]
    assert df["item_id"].to_list() == [10, 20]
    assert df["rating"].to_list() == [5.0, 3.0]
    assert df["ts"].to_list() == [100, 200]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "u.data"
    # line 3 has 3 fields instead of 4
    path.write_text("1\t10\t5\t100\n2\t20\t3\t200\n3\t30\t4\n4\t40\t2\t400\n")
    with pytest.raises(PngnnError) as exc:
        datasets.parse_ratings(path, "\t")
    msg = one_line(exc)
    assert "line 3" in msg
    assert str(path) in msg
    with pytest.raises(PngnnError, match="line 3") as exc:
        datasets.split_fields(path, "\t", 4, ["a", "b", "c", "d"])
    assert str(path) in one_line(exc)


def test_non_numeric_rating_names_line_and_column(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t10\t5\t100\n2\t20\tfive\t200\n")
    with pytest.raises(PngnnError) as exc:
        datasets.parse_ratings(path, "\t")
    msg = one_line(exc)
    assert "line 2" in msg
    assert "rating" in msg
    assert "'five'" in msg
    assert str(path) in msg


@pytest.mark.parametrize("bad", ["7", "0", "nan", "-inf"])
def test_out_of_range_rating(tmp_path, bad):
    path = tmp_path / "u.data"
    path.write_text(f"1\t10\t5\t100\n2\t20\t4\t200\n3\t30\t{bad}\t300\n")
    with pytest.raises(PngnnError) as exc:
        datasets.parse_ratings(path, "\t")
    msg = one_line(exc)
    assert "line 3" in msg
    assert str(path) in msg


def test_non_integer_id(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t10\t5\t100\nx\t20\t4\t200\n")
    with pytest.raises(PngnnError, match="line 2") as exc:
        datasets.parse_ratings(path, "\t")
    assert "user_id" in one_line(exc)


def test_empty_ratings_file(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("")
    with pytest.raises(PngnnError) as exc:
        datasets.parse_ratings(path, "\t")
    assert str(path) in one_line(exc)


# --- the cache: missing, truncated and downloaded files ----------------------------------------


def test_missing_file_without_download(tmp_path):
    with pytest.raises(PngnnError) as exc:
        datasets.load("ml-100k", tmp_path, allow_download=False)
    msg = one_line(exc)
    # the first missing file is named with its full path
    assert str(tmp_path / "ml-100k" / "u.data") in msg


def test_one_missing_file_is_named(tmp_path, data_dir):
    folder = copy_ml100k(data_dir, tmp_path)
    (folder / "u.user").unlink()
    with pytest.raises(PngnnError) as exc:
        datasets.load("ml-100k", tmp_path, allow_download=False)
    assert str(folder / "u.user") in one_line(exc)


def test_truncated_copy_fails_checksum(tmp_path, data_dir):
    folder = copy_ml100k(data_dir, tmp_path)
    # the intact copy loads
    assert datasets.load("ml-100k", tmp_path, allow_download=False).ratings.height == 100_000
    data = (folder / "u.data").read_bytes()
    (folder / "u.data").write_bytes(data[: len(data) // 2])
    with pytest.raises(PngnnError) as exc:
        datasets.load("ml-100k", tmp_path, allow_download=False)
    msg = one_line(exc)
    assert "checksum" in msg
    assert str(folder / "u.data") in msg


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(PngnnError) as exc:
        config.check_dataset("ml-30m")
    msg = one_line(exc)
    assert "ml-30m" in msg
    assert "ml-100k" in msg and "ml-1m" in msg  # the valid choices are listed
    with pytest.raises(PngnnError, match="ml-30m"):
        datasets.load("ml-30m", tmp_path, allow_download=False)
    assert config.check_dataset("ml-1m") == "ml-1m"


def _zip_ml100k(data_dir: Path, target: Path, truncate: str | None = None) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for name in ML100K_FILES:
            data = (data_dir / "ml-100k" / name).read_bytes()
            if name == truncate:
                data = data[:100]
            zf.writestr(f"ml-100k/{name}", data)
    return target


def test_download_from_local_zip(tmp_path, data_dir, monkeypatch):
    _zip_ml100k(data_dir, tmp_path / "ml-100k.zip")
    cache = tmp_path / "cache"
    with files_over_http(tmp_path) as base:
        monkeypatch.setattr(datasets, "GROUPLENS_URL", f"{base}/{{name}}.zip")
        paths = datasets.ensure_files("ml-100k", cache, allow_download=True)
    assert paths["ratings"] == cache / "ml-100k" / "u.data"
    for name in ML100K_FILES:
        assert (cache / "ml-100k" / name).read_bytes() == (data_dir / "ml-100k" / name).read_bytes()


def test_corrupt_download_leaves_no_cache(tmp_path, data_dir):
    _zip_ml100k(data_dir, tmp_path / "bad.zip", truncate="u.item")
    cache = tmp_path / "cache"
    with pytest.raises(PngnnError, match="checksum") as exc, files_over_http(tmp_path) as base:
        datasets.download("ml-100k", cache, url=f"{base}/bad.zip")
    assert "u.item" in one_line(exc)
    assert not (cache / "ml-100k").exists()


def test_unreachable_download(tmp_path):
    with pytest.raises(PngnnError, match="cannot download") as exc:
        datasets.download("ml-100k", tmp_path, url=f"http://127.0.0.1:{free_port()}/does-not-exist.zip")
    one_line(exc)
    with pytest.raises(PngnnError, match="cannot download") as exc, files_over_http(tmp_path) as base:
        datasets.download("ml-100k", tmp_path, url=f"{base}/does-not-exist.zip")  # HTTP 404
    one_line(exc)
