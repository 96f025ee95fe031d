"""scripts/dropout_edge_check.py on a real ML-100K store: every fit lands in the JSON with the grid's
best beside it, the grid's other settings are kept, and the values are the validation metric a fresh
fit of the study's method gives."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "dropout_edge_check.py"
GRID_BEST = {"weighted-ease": {"ease_lambda": 400.0, "disliked_input": 0.5, "pn_dropout": 0.5},
             "pn-ease": {"ease_lambda": 250.0, "disliked_input": 0.5, "disliked_score": 0.5, "pn_dropout": 0.5}}


def load_check():
    spec = importlib.util.spec_from_file_location("dropout_edge_check", SCRIPT)
    assert spec and spec.loader
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    return check


def write_study(folder: Path, method: str) -> Path:
    folder.mkdir()
    (folder / "seed1_study.json").write_text(json.dumps({
        "method": method, "dataset": "ml-100k", "seed": 1, "metric": "ndcg@20", "best_value": 0.25,
        "best_params": GRID_BEST.get(method, {"ease_lambda": 400.0})}))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("method", ["weighted-ease", "pn-ease"])
def test_the_check_fits_each_point_on_validation_and_keeps_the_grids_best(tmp_path, monkeypatch, ml100k_db_copy,
                                                                           data_dir, method):
    monkeypatch.setenv("PNGNN_DB", str(ml100k_db_copy))
    monkeypatch.setenv("PNGNN_DATA_DIR", str(data_dir))
    check = load_check()
    out = tmp_path / "check.json"
    check.main([str(write_study(tmp_path / "studies", method)), "--dropout", "0.6", "--out", str(out)])
    rows = json.loads(out.read_text())
    assert len(rows) == len(check.RIDGES) * len(check.WEIGHTS[method])
    assert {r["pn_dropout"] for r in rows} == {0.6} and {r["grid_best"] for r in rows} == {0.25}
    assert {r["method"] for r in rows} == {method} and all(0 < r["ndcg@20"] < 1 for r in rows)
    # the settings the check does not vary are the grid's choice (PN-EASE's disliked score)
    assert {r.get("disliked_score") for r in rows} == {GRID_BEST[method].get("disliked_score")}

    from pngnn.app.study import validation_only
    from pngnn.augment.edges import load_split_step
    from pngnn.core.config import TrainConfig
    from pngnn.core.settings import Settings
    from pngnn.evaluation.evaluate import evaluate
    from pngnn.training.methods import train_method

    split = validation_only(load_split_step(Settings(), "ml-100k", 1))
    assert len(split.valid) > 0 and len(split.test) == 0
    row = rows[3]
    kept = {"disliked_score": row["disliked_score"]} if "disliked_score" in row else {}
    cfg = TrainConfig(ease_lambda=row["ease_lambda"], disliked_input=row["disliked_input"], pn_dropout=0.6, **kept)
    model = train_method(method, split, cfg, progress=False).model
    fresh = evaluate(model.full_sort_predict, split.n_items, split.train, split.valid)["ndcg@20"]
    assert fresh == pytest.approx(row["ndcg@20"], abs=1e-9)


def test_a_study_of_another_method_is_refused_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"seed1_study.json is a study of ease; this check takes one of "
                                         r"weighted-ease, pn-ease") as info:
        load_check().main([str(write_study(tmp_path / "studies", "ease")), "--out", str(tmp_path / "c.json")])
    assert "\n" not in str(info.value) and not (tmp_path / "c.json").exists()


def test_an_empty_folder_is_named_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"no seed<N>_study.json in .*empty; pass the folder") as info:
        load_check().main([str(tmp_path / "empty"), "--out", str(tmp_path / "c.json")])
    assert "\n" not in str(info.value) and not (tmp_path / "c.json").exists()
