"""Paired tests (issue 31 item 4): per-user metrics from the same ranked lists, Holm's correction
and the Wilcoxon signed-rank test by hand, and `pngnn report --compare` end to end."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy import stats
from typer.testing import CliRunner

from pngnn.evaluation.metrics import per_user_metrics, ranking_metrics
from pngnn.evaluation.significance import holm, users_mean_over_splits, wilcoxon_p


def test_holm_by_hand():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_wilcoxon_p_of_identical_and_shifted_users():
    rng = np.random.default_rng(0)
    base = rng.uniform(size=300)
    assert wilcoxon_p(base, base) == 1.0  # every user ties: no evidence either way
    shifted = base + rng.normal(0.05, 0.02, 300)
    assert wilcoxon_p(shifted, base) < 1e-10
    noise = base + rng.normal(0.0, 0.02, 300)
    assert wilcoxon_p(noise, base) == pytest.approx(stats.wilcoxon(noise - base).pvalue)


def test_a_users_mean_over_splits_counts_only_users_of_every_split():
    one = pl.DataFrame({"user": [1, 2, 3], "recall@5": [0.2, 0.4, 1.0], "recall@5_baseline": [0.0, 0.4, 0.5]})
    two = pl.DataFrame({"user": [1, 2], "recall@5": [0.6, 0.0], "recall@5_baseline": [0.2, 0.2]})
    mean = users_mean_over_splits({1: one, 2: two})
    assert mean["user"].to_list() == [1, 2]  # user 3 was not evaluated on split 2
    assert mean["recall@5"].to_list() == pytest.approx([0.4, 0.2])
    assert mean["recall@5_baseline"].to_list() == pytest.approx([0.1, 0.3])


def test_splits_without_a_common_user_get_no_mean_over_splits_column(tmp_path):
    from pngnn.evaluation.significance import paired_tests

    for method, shift in (("ours", 0.1), ("theirs", 0.0)):
        for seed, users in ((1, [1, 2, 3]), (2, [4, 5, 6])):  # nobody is evaluated on both splits
            folder = tmp_path / "toy" / method
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"seed{seed}.json").write_text(json.dumps(
                {"method": method, "dataset": "toy", "seed": seed, "metrics": {"recall@5": 0.5}}))
            pl.DataFrame({"user": users, "precision@5": [0.2, 0.4 + shift, 0.6],
                          "recall@5": [0.2 + shift, 0.4 + shift, 0.9]}).write_parquet(
                folder / f"seed{seed}.users.parquet")
    table = paired_tests(tmp_path, "toy", "ours", "theirs", ks=[5])
    assert not any(c.startswith("mean of") for c in table.columns)
    assert "split 1: diff, Holm p" in table.columns and "split 2: diff, Holm p" in table.columns


def test_per_user_metrics_average_to_the_table_metrics():
    hits = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]], dtype=bool)
    n_relevant = np.array([2, 3, 5])
    per_user = per_user_metrics(hits, n_relevant, [1, 5])
    assert per_user["precision@5"].tolist() == pytest.approx([0.4, 0.2, 1.0])
    assert per_user["recall@5"].tolist() == pytest.approx([1.0, 1 / 3, 1.0])
    means = ranking_metrics(hits, n_relevant, [1, 5])
    for name, values in per_user.items():
        assert values.mean() == pytest.approx(means[name])


def test_report_compare_gives_the_paired_test_of_two_trained_methods(tmp_path, monkeypatch, ml100k_db_copy,
                                                                     data_dir):
    from flows.cli import app

    monkeypatch.setenv("PNGNN_DB", str(ml100k_db_copy))
    monkeypatch.setenv("PNGNN_DATA_DIR", str(data_dir))
    runner = CliRunner()
    results = str(tmp_path / "results")
    for method in ("mostpop", "ease"):
        out = runner.invoke(app, ["train", "--method", method, "--seed", "1", "--seed", "2", "--results-dir", results])
        assert out.exit_code == 0, out.output
    users = pl.read_parquet(tmp_path / "results" / "ml-100k" / "ease" / "seed1.users.parquet")
    import json

    record = json.loads((tmp_path / "results" / "ml-100k" / "ease" / "seed1.json").read_text())
    assert users.height == record["metrics"]["n_eval_users"]
    assert users["recall@20"].mean() == pytest.approx(record["metrics"]["recall@20"], rel=1e-5)
    report = runner.invoke(app, ["report", "--dataset", "ml-100k", "--results-dir", results,
                                 "--compare", "ease:mostpop"])
    assert report.exit_code == 0, report.output
    assert "Wilcoxon signed-rank over users, Holm-corrected" in report.output
    rows = [line for line in report.output.splitlines() if line.startswith("| P@5 |") or line.startswith("| R@20 |")]
    assert len(rows) == 4  # the differences table and the paired-test table
    # EASE beats most-popular on R@20 on both splits and on the users' mean over them, p < 0.05
    cells = [c.strip() for c in rows[-1].strip(" |").split("|")]
    assert cells[3] == "2" and "mean of 2 splits" in report.output
    assert cells[4].startswith("+") and float(cells[4].split(", ")[1]) < 0.05
