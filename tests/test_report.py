"""The experiment flow's Table 1 output: mean/std CSV, paper-layout Markdown, bar chart."""

from __future__ import annotations

import polars as pl
import pytest

from pngnn.core.constants import KS
from pngnn.evaluation.report import markdown_table, summary_frame, write_report


def metrics(p: float, r: float) -> dict[str, float]:
    return {f"{m}@{k}": v for k in KS for m, v in (("precision", p), ("recall", r), ("ndcg", (p + r) / 2))}


RUNS = {"lightgcn": [metrics(0.20, 0.10), metrics(0.22, 0.14)], "pngnn": [metrics(0.30, 0.20)] * 3}


def test_summary_is_mean_and_sample_std_over_splits():
    frame = summary_frame(RUNS)
    lgcn = frame.filter(pl.col("method") == "lightgcn").row(0, named=True)
    assert lgcn["splits"] == 2
    assert lgcn["precision@5_mean"] == pytest.approx(0.21)
    assert lgcn["recall@20_std"] == pytest.approx(0.0282842712, rel=1e-6)  # sample std of 0.10, 0.14
    png = frame.filter(pl.col("method") == "pngnn").row(0, named=True)
    assert png["splits"] == 3 and png["recall@10_std"] == pytest.approx(0.0, abs=1e-12)


def test_markdown_has_paper_layout_and_optional_paper_rows():
    md = markdown_table(summary_frame(RUNS), paper=True)
    lines = md.splitlines()
    assert lines[0] == "| method | splits | P@5 | P@10 | P@15 | P@20 | R@5 | R@10 | R@15 | R@20 |"
    assert "| lightgcn | 2 | 0.2100 ± 0.0141 |" in md
    assert "| pngnn (paper) | 3 | 0.3164 |" in md
    assert "(paper)" not in markdown_table(summary_frame(RUNS), paper=False)


def test_write_report_files(tmp_path):
    paths = write_report(RUNS, tmp_path / "out", "ml-100k test")
    csv = pl.read_csv(paths["csv"])
    assert csv["method"].to_list() == ["lightgcn", "pngnn"]
    assert {"precision@20_mean", "recall@20_std", "ndcg@10_mean"} <= set(csv.columns)
    assert paths["markdown"].read_text().startswith("# ml-100k test\n\n| method |")
    png = paths["chart"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_augmentation_table_reads_the_augment_records(tmp_path):
    from pngnn.evaluation.results import augmentation_table, write_augmentation

    for seed, hit in ((1, 0.25), (2, 0.5)):
        write_augmentation(tmp_path, {"dataset": "ml-1m", "seed": seed, "model": "org/tiny-llm", "users": 4,
                                      "answers": 4, "ok": 4, "invalid": 0, "positive_edges": 4, "negative_edges": 3,
                                      "like_precision": hit, "like_base_rate": 0.25, "like_lift": hit / 0.25,
                                      "dislike_precision": 0.1, "dislike_base_rate": 0.2, "dislike_lift": 0.5})
    assert (tmp_path / "augmentation" / "ml-1m" / "org_tiny-llm" / "seed2.json").exists()
    frame = augmentation_table(tmp_path, "ml-1m")
    assert frame["split"].to_list() == [1, 2]
    assert frame["like lift"].to_list() == ["1.000", "2.000"]
    assert frame["llm"].to_list() == ["org/tiny-llm"] * 2 and frame["ranker"].to_list() == ["quick"] * 2
    # Not a method: the results table never lists it.
    from pngnn.evaluation.results import results_table

    assert results_table(tmp_path, "ml-1m").is_empty()


def test_an_augmentation_with_another_candidate_ranker_is_filed_beside_the_default_one(tmp_path):
    """`pngnn augment --candidates-profile paper` into the same results folder: its record gets a
    folder of its own (the default run's stays), and the table says which ranker each row had."""
    from pngnn.evaluation.results import augmentation_path, augmentation_table, write_augmentation

    base = {"dataset": "ml-1m", "seed": 1, "model": "tiny", "users": 4, "like_lift": 1.0}
    default = write_augmentation(tmp_path, {**base, "candidates_profile": "quick"})
    paper = write_augmentation(tmp_path, {**base, "candidates_profile": "paper", "like_lift": 1.5})
    assert default == augmentation_path(tmp_path, "ml-1m", "tiny", 1) == tmp_path / "augmentation/ml-1m/tiny/seed1.json"
    assert paper == augmentation_path(tmp_path, "ml-1m", "tiny", 1, "paper") != default
    assert paper.parent.name == "tiny-paper-ranker" and default.exists()
    rows = {r["ranker"]: r for r in augmentation_table(tmp_path, "ml-1m").iter_rows(named=True)}
    assert rows["quick"]["like lift"] == "1.000" and rows["paper"]["like lift"] == "1.500"


def test_results_table_shows_spread_only_when_there_is_one(tmp_path):
    from pngnn.evaluation.results import results_table, write_result

    for seed, p in ((1, 0.30), (2, 0.32)):
        write_result(tmp_path, {"dataset": "ml-1m", "method": "lightgcn", "seed": seed, "metrics": metrics(p, 0.1)})
    write_result(tmp_path, {"dataset": "ml-1m", "method": "pngnn", "seed": 1, "metrics": metrics(0.29, 0.1)})
    rows = {r["method"]: r for r in results_table(tmp_path, "ml-1m", with_paper=False).iter_rows(named=True)}
    assert rows["lightgcn"]["P@5"] == "0.3100 ± 0.0141" and rows["lightgcn"]["splits"] == 2
    assert rows["pngnn"]["P@5"] == "0.2900" and rows["pngnn"]["splits"] == 1


def test_paired_differences_are_same_split_means_and_minima(tmp_path):
    import json

    from pngnn.core.errors import PngnnError
    from pngnn.evaluation.results import paired_differences

    # ours: P@5 .30 / .40 on splits 1 / 2 (and a split 3 the baseline lacks); baseline .25 / .42
    for method, seeds in {"ours": {1: 0.30, 2: 0.40, 3: 0.9}, "base": {1: 0.25, 2: 0.42}}.items():
        for seed, p in seeds.items():
            path = tmp_path / "ml-1m" / method / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"seed": seed, "metrics": metrics(p, p / 2)}))
    frame = paired_differences(tmp_path, "ml-1m", "ours", "base")
    row = frame.filter(pl.col("metric") == "P@5").row(0, named=True)
    assert row == {"metric": "P@5", "mean difference": "+0.0150", "smallest": "-0.0200", "splits": 2}
    with pytest.raises(PngnnError, match="no results for 'nope'"):
        paired_differences(tmp_path, "ml-1m", "ours", "nope")


def test_segments_table_lists_only_runs_that_carry_every_segment(tmp_path):
    from pngnn.core.errors import PngnnError
    from pngnn.evaluation.results import segments_table, write_result
    from pngnn.evaluation.segments import SEGMENTS

    def with_segments(value: float) -> dict[str, float]:
        return {**metrics(0.3, 0.1), **{f"{s}/recall@20": value for s in SEGMENTS},
                **{f"{s}/ndcg@20": value for s in SEGMENTS}}

    with pytest.raises(PngnnError, match="no ml-1m results with segment metrics"):
        segments_table(tmp_path, "ml-1m")
    for seed, value in ((1, 0.40), (2, 0.44)):
        write_result(tmp_path, {"dataset": "ml-1m", "method": "ease", "seed": seed, "metrics": with_segments(value)})
    write_result(tmp_path, {"dataset": "ml-1m", "method": "pngnn", "seed": 1, "metrics": metrics(0.3, 0.1)})
    rows = segments_table(tmp_path, "ml-1m").to_dicts()
    assert [r["method"] for r in rows] == ["ease"]  # pngnn's record has no segments
    assert rows[0]["users_sparsest10/recall@20"] == "0.4200 ± 0.0283"
    assert rows[0]["long_tail/recall@20"] == "0.4200 ± 0.0283"


def test_results_json_is_readable_by_everyone_like_a_plain_file(tmp_path):
    """The atomic write goes through mkstemp, which creates owner-only files; a committed results
    file must come out 0644 as any file written with open() under the usual umask."""
    import stat

    from pngnn.evaluation.results import write_json_atomic

    path = write_json_atomic(tmp_path / "ml-1m" / "pngnn" / "seed1.json", {"metrics": {"recall@20": 0.3}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["seed1.json"]  # no temporary file left


def with_segment_metrics(base: dict[str, float], by_segment: dict[str, float]) -> dict[str, float]:
    """``base`` plus recall@20 (and NDCG@20, not charted) of every segment, from ``by_segment``."""
    return {**base, **{f"{s}/recall@20": v for s, v in by_segment.items()},
            **{f"{s}/ndcg@20": v / 2 for s, v in by_segment.items() if s != "long_tail"}}


def test_segments_frame_aggregates_only_methods_whose_every_split_has_segments(tmp_path):
    from pngnn.evaluation.report import segments_chart, segments_frame
    from pngnn.evaluation.segments import SEGMENTS

    seg = dict.fromkeys(SEGMENTS, 0.3)
    runs = {"ease": [with_segment_metrics(metrics(0.3, 0.1), {**seg, "users_q1": 0.40, "long_tail": 0.02}),
                     with_segment_metrics(metrics(0.3, 0.1), {**seg, "users_q1": 0.50, "long_tail": 0.04})],
            # a record from before segments existed next to a new one: not charted, not half-averaged
            "pngnn": [metrics(0.3, 0.1), with_segment_metrics(metrics(0.3, 0.1), seg)],
            "lightgcn": [metrics(0.2, 0.1)]}
    frame = segments_frame(runs)
    assert frame["method"].to_list() == ["ease"]
    row = frame.row(0, named=True)
    assert row["splits"] == 2
    assert row["users_q1/recall@20_mean"] == pytest.approx(0.45)
    assert row["users_q1/recall@20_std"] == pytest.approx(0.0707106781, rel=1e-6)  # sample std of 0.40, 0.50
    assert row["long_tail/recall@20_mean"] == pytest.approx(0.03)
    assert row["users_q4/recall@20_std"] == pytest.approx(0.0, abs=1e-12)
    assert segments_frame({"lightgcn": [metrics(0.2, 0.1)]}).height == 0
    png = segments_chart(frame, tmp_path / "seg.png", "ml-1m").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_write_report_draws_the_segment_chart_only_when_runs_carry_segments(tmp_path):
    from pngnn.evaluation.segments import SEGMENTS

    assert "segments" not in write_report(RUNS, tmp_path / "plain", "ml-100k")
    with_seg = {**RUNS, "ease": [with_segment_metrics(metrics(0.3, 0.2), dict.fromkeys(SEGMENTS, 0.3))] * 2}
    paths = write_report(with_seg, tmp_path / "seg", "ml-100k")
    assert paths["segments"] == tmp_path / "seg" / "recall_by_segment.png"
    assert paths["segments"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_segments_plot_from_the_command_line(tmp_path):
    import os
    import subprocess

    from pngnn.evaluation.results import write_result
    from pngnn.evaluation.segments import SEGMENTS
    from tests.servers import BIN, QUIET_ENV

    for seed, value in ((1, 0.40), (2, 0.44)):
        write_result(tmp_path / "results", {"dataset": "ml-1m", "method": "ease", "seed": seed,
                                            "metrics": with_segment_metrics(metrics(0.3, 0.1),
                                                                            dict.fromkeys(SEGMENTS, value))})
    out = tmp_path / "plots" / "segments.png"
    proc = subprocess.run([str(BIN / "pngnn"), "report", "--dataset", "ml-1m", "--results-dir",
                           str(tmp_path / "results"), "--segments", "--plot", str(out)],
                          env={**os.environ, **QUIET_ENV}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| ease | 2 | 0.4200 ± 0.0283 |" in proc.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "a-file").write_text("")
    bad = subprocess.run([str(BIN / "pngnn"), "report", "--dataset", "ml-1m", "--results-dir",
                          str(tmp_path / "results"), "--segments", "--plot", str(tmp_path / "a-file" / "seg.png")],
                         env={**os.environ, **QUIET_ENV}, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "cannot write the chart to" in bad.stderr and "writable folder" in bad.stderr
