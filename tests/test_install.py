"""Install test: the package works from its wheel, not only from a checkout.

A wheel built from this tree is installed (not editable) into a fresh virtual environment
and runs ``pngnn ingest ml-100k`` from an empty folder. An editable install finds files
beside the package (``sql/`` used to sit there), a wheel finds only what it ships, so this
is the test that catches package data left out of pyproject.toml.

To stay fast and offline, the fresh environment gets the heavy dependencies (torch, duckdb,
polars...) from the environment running the tests, through a ``.pth`` file; the wheel is
installed with ``--no-deps``. The test checks that the ``pngnn`` that runs is the installed
one and that the checkout is nowhere on its path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from pngnn.data.store import Store
from tests.servers import QUIET_ENV

pytestmark = pytest.mark.install

REPO = Path(__file__).resolve().parents[1]
# What the wheel is built from (pyproject.toml's packages and readme); copied so that the build
# writes its build/ and *.egg-info into a temporary folder, not into the checkout.
SOURCES = ("pyproject.toml", "README.md", "pngnn", "tasks", "flows")

PROBE = """
import json, sys
import pngnn, pngnn.data.sql_files
print(json.dumps({"pngnn": pngnn.__file__, "sql": str(pngnn.data.sql_files.SQL_FILES), "path": sys.path}))
"""


def _run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp / "dist", src])
    (wheel,) = (tmp / "dist").glob("llm_pngnn-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # A path line in a .pth is appended to sys.path after the venv's own site-packages, and the
    # .pth files inside that folder are not run, so this environment's editable install of
    # pngnn (a .pth finder) stays inactive in the fresh venv.
    deps = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (site / "_test_env_deps.pth").write_text("\n".join(deps) + "\n")
    return venv


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, **QUIET_ENV, **extra}


def test_the_wheel_ships_its_data_and_ingests_from_a_fresh_venv(tmp_path, data_dir):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped_sql = {n for n in names if n.startswith("pngnn/data/sql/") and n.endswith(".sql")}
    in_tree = {f"pngnn/data/sql/{p.name}" for p in (REPO / "pngnn" / "data" / "sql").glob("*.sql")}
    assert shipped_sql == in_tree and "pngnn/data/SHA256SUMS" in names

    venv = _fresh_venv(tmp_path, wheel)
    workdir = tmp_path / "elsewhere"  # not the checkout: nothing there to import by accident
    workdir.mkdir()
    db = tmp_path / "db" / "pngnn.duckdb"
    env = _clean_env(PNGNN_DATA_DIR=str(data_dir), PNGNN_DB=str(db),
                     MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")

    probe = json.loads(_run([venv / "bin" / "python", "-c", PROBE], cwd=workdir, env=env).stdout)
    installed = Path(probe["pngnn"]).resolve()
    assert installed.is_relative_to(venv.resolve()), f"pngnn imported from {installed}, not the fresh venv"
    assert Path(probe["sql"]).resolve().is_relative_to(venv.resolve())
    # the borrowed dependencies may live in a venv inside the checkout (CI's .venv): only those
    # folders may lie under it, never the checkout's source itself
    borrowed = {Path(p).resolve() for p in sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})}
    on_path = [Path(p).resolve() for p in probe["path"] if p]
    assert REPO not in on_path, probe["path"]
    assert not any(p.is_relative_to(REPO) and p not in borrowed for p in on_path), probe["path"]

    proc = _run([venv / "bin" / "pngnn", "ingest", "ml-100k", "--no-download"], cwd=workdir, env=env)
    assert "ml-100k: ingested: 100000 ratings, 943 users, 1682 items" in proc.stdout, proc.stdout
    with Store(db, read_only=True) as store:
        assert store.scalar("SELECT count(*) FROM ratings WHERE dataset = 'ml-100k'") == 100_000
        assert store.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'llm_cache'") == 1
    assert not list(workdir.iterdir())  # it wrote where PNGNN_DB points, nothing into the folder it ran in
