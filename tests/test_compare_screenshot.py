"""README's MLflow Compare screenshot (issue 15 item 3): the committed picture, the columns README
names and those the script picks are the same, and the script makes the picture for real."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "mlflow_compare_screenshot.py"
PNG = ROOT / "docs" / "mlflow-compare.png"


def script():
    spec = importlib.util.spec_from_file_location("mlflow_compare_screenshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_show_the_committed_picture_and_names_what_the_script_picks():
    from PIL import Image

    page = (ROOT / "docs" / "tracking.md").read_text()
    assert f"]({PNG.relative_to(ROOT / 'docs')})" in page and "scripts/mlflow_compare_screenshot.py" in page
    section = page.split("## Comparing runs in MLflow", 1)[1].split("\n## ", 1)[0]
    shown = script()
    for key in (*shown.PICK_PARAMS, *shown.PICK_METRICS):
        assert f"`{key}`" in section, key
    assert PNG.stat().st_size < 100_000  # a committed file: kept small
    with Image.open(PNG) as image:
        assert image.size[0] >= 1000 and image.mode == "P"  # a palette PNG, as shrink() writes it


@pytest.mark.slow
def test_the_script_makes_the_picture_from_a_real_server_and_browser(tmp_path, data_dir):
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-headless-shell") if shutil.which(n)), None)
    if chromium is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    out = tmp_path / "compare.png"
    env = {**os.environ, "PNGNN_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--chromium", chromium], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    # the script fails unless the plot shows exactly the parameters and metrics it picked
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    from PIL import Image

    with Image.open(out) as image:
        assert image.size == (1280, 860) and len(image.getcolors(256) or []) > 8  # a rendered page, not blank
    assert list(tmp_path.iterdir()) == [out]  # nothing else written where it ran
