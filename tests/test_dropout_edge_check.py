"""scripts/dropout_edge_check.py on a real ML-100K store: every fit lands in the JSON with the grid's
best beside it, and the values are the validation metric a fresh fit gives."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "dropout_edge_check.py"


@pytest.mark.slow
def test_the_check_fits_each_point_on_validation_and_keeps_the_grids_best(tmp_path, monkeypatch, ml100k_db_copy,
                                                                           data_dir):
    monkeypatch.setenv("PNGNN_DB", str(ml100k_db_copy))
    monkeypatch.setenv("PNGNN_DATA_DIR", str(data_dir))
    spec = importlib.util.spec_from_file_location("dropout_edge_check", SCRIPT)
    assert spec and spec.loader
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "seed1_study.json").write_text(json.dumps({
        "dataset": "ml-100k", "seed": 1, "metric": "ndcg@20", "best_value": 0.25,
        "best_params": {"ease_lambda": 400.0, "disliked_input": 0.5, "pn_dropout": 0.5}}))
    out = tmp_path / "check.json"
    check.main([str(studies), "--dropout", "0.6", "--out", str(out)])
    rows = json.loads(out.read_text())
    assert len(rows) == len(check.RIDGES) * len(check.WEIGHTS)
    assert {r["pn_dropout"] for r in rows} == {0.6} and {r["grid_best"] for r in rows} == {0.25}
    assert all(0 < r["ndcg@20"] < 1 for r in rows)

    from pngnn.app.study import validation_only
    from pngnn.augment.edges import load_split_step
    from pngnn.core.config import TrainConfig
    from pngnn.core.settings import Settings
    from pngnn.evaluation.evaluate import evaluate
    from pngnn.training.methods import train_method

    split = validation_only(load_split_step(Settings(), "ml-100k", 1))
    assert len(split.valid) > 0 and len(split.test) == 0
    row = rows[3]
    cfg = TrainConfig(ease_lambda=row["ease_lambda"], disliked_input=row["disliked_input"], pn_dropout=0.6)
    model = train_method("weighted-ease", split, cfg, progress=False).model
    fresh = evaluate(model.full_sort_predict, split.n_items, split.train, split.valid)["ndcg@20"]
    assert fresh == pytest.approx(row["ndcg@20"], abs=1e-9)
