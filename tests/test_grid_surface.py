"""scripts/grid_surface.py: a grid study's validation surface, checked on hand-made study records."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "grid_surface.py"
spec = importlib.util.spec_from_file_location("grid_surface", SCRIPT)
assert spec and spec.loader
grid_surface = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grid_surface)


def study(path: Path, seed: int, values: dict[tuple[float, float, float], float]) -> Path:
    trials = [{"number": n, "state": "COMPLETE", "value": v, "params": {"lam": lam, "w": w, "gamma": g}}
              for n, ((lam, w, g), v) in enumerate(values.items())]
    pruned = {"lam": 1.0, "w": 1.0, "gamma": 0.0}
    trials.append({"number": len(trials), "state": "PRUNED", "value": 9.0, "params": pruned})
    path.write_text(json.dumps({"seed": seed, "metric": "ndcg@20", "trials": trials}))
    return path


@pytest.fixture
def studies(tmp_path):
    one = study(tmp_path / "seed1_study.json", 1, {(1.0, 1.0, 0.0): 0.10, (1.0, 1.0, 0.5): 0.30,
                                                   (1.0, 2.0, 0.0): 0.20, (2.0, 1.0, 0.0): 0.15})
    two = study(tmp_path / "seed2_study.json", 2, {(1.0, 1.0, 0.0): 0.50, (1.0, 1.0, 0.5): 0.10,
                                                   (1.0, 2.0, 0.0): 0.40})
    return [one, two]


def test_a_cell_is_the_best_over_the_hidden_setting_averaged_over_splits(studies):
    cells = grid_surface.surface(grid_surface.trials_frame(studies), "lam", "w")
    by_cell = {(r["lam"], r["w"]): (r["value"], r["splits"]) for r in cells.iter_rows(named=True)}
    assert by_cell[(1.0, 1.0)] == (pytest.approx((0.30 + 0.50) / 2), 2)  # best gamma differs per split
    assert by_cell[(1.0, 2.0)] == (pytest.approx(0.30), 2)
    assert by_cell[(2.0, 1.0)] == (pytest.approx(0.15), 1)  # the pruned trial (9.0) never counts


def test_the_table_marks_the_best_cell_and_shows_untried_ones(studies, tmp_path):
    table = grid_surface.markdown(grid_surface.surface(grid_surface.trials_frame(studies), "lam", "w"), "lam", "w")
    assert "| 1.0 | **0.4000** | 0.3000 |" in table
    assert "| 2.0 | 0.1500 | - |" in table


def test_the_command_prints_panels_draws_the_png_and_names_an_unknown_setting(studies, tmp_path):
    png = tmp_path / "surface.png"
    done = subprocess.run([sys.executable, str(SCRIPT), *map(str, studies), "--rows", "lam", "--cols", "w",
                           "--panel", "gamma", "--plot", str(png)], capture_output=True, text=True, check=True)
    assert "gamma = 0.0" in done.stdout and "gamma = 0.5" in done.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([sys.executable, str(SCRIPT), str(studies[0]), "--rows", "lam", "--cols", "beta"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "no setting beta" in bad.stderr and bad.stderr.count("\n") == 1
