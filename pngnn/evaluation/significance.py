"""Paired significance of one method against another: Wilcoxon signed-rank over users, per split,
Holm-corrected across the table's columns.

Why this test: the metrics are means over the same users, so the natural question is whether the
per-user differences centre on zero; per-user P@K and R@K are bounded and far from normal (many
exact ties at 0), which rules out a t-test and suits a rank test. Users whose two values are equal
carry no sign and are left out (``zero_method="wilcox"``); a split where every user ties gives
p = 1. The 8 columns of a split are 8 tests of one comparison, so their p-values are adjusted
with Holm's step-down method (family-wise error at the level, no independence assumed).

The headline rows are means over split seeds, so one more test answers for them: each user's
metric averaged over the splits (users evaluated on every split compared), the same signed-rank test
over users, Holm over the columns. Averaging within a user keeps the user the independent unit; the
splits share their users, so pooling the splits' pairs as if independent would overstate the evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

from pngnn.core.constants import KS, TABLE_METRICS
from pngnn.core.errors import PngnnError
from pngnn.evaluation.results import load_results, paired_differences, per_user_path, result_path
from pngnn.evaluation.tables import to_markdown

LEVEL = 0.05


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order: the i-th smallest times (m - i), made monotone."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate(np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out.tolist()


def wilcoxon_p(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the paired differences; 1 when all of them are 0."""
    diff = np.asarray(ours, dtype=np.float64) - np.asarray(theirs, dtype=np.float64)
    if not np.any(diff != 0):
        return 1.0
    return float(stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided").pvalue)


def _per_user(results_dir: Path, dataset: str, method: str, seed: int) -> pl.DataFrame | None:
    """A run's per-user metrics: its tag is the method name's suffix as the results folder spells it."""
    path = per_user_path(result_path(results_dir, dataset, method, seed))
    return pl.read_parquet(path) if path.is_file() else None


def paired_tests(results_dir: Path, dataset: str, method: str, baseline: str, ks: Sequence[int] = KS,
                 level: float = LEVEL) -> pl.DataFrame:
    """Per column: the Holm-adjusted Wilcoxon p-value of ``method`` vs ``baseline`` on each split seed
    both have per-user metrics for, and on how many splits it is below ``level``."""
    runs = load_results(results_dir, dataset)
    seeds = sorted({r["seed"] for r in runs.get(method, [])} & {r["seed"] for r in runs.get(baseline, [])})
    frames = {}
    for seed in seeds:
        ours, theirs = _per_user(results_dir, dataset, method, seed), _per_user(results_dir, dataset, baseline, seed)
        if ours is not None and theirs is not None:
            frames[seed] = ours.join(theirs, on="user", suffix="_baseline")
    if not frames:
        raise PngnnError(f"no per-user metrics of both '{method}' and '{baseline}' on a common split in "
                         f"{results_dir / dataset} (runs before they were recorded have none); rerun both with "
                         "`pngnn train` (or `pngnn tune`) to write them")
    columns = [f"{m}@{k}" for k in ks for m in TABLE_METRICS]
    adjusted = {seed: holm([wilcoxon_p(f[c].to_numpy(), f[f"{c}_baseline"].to_numpy()) for c in columns])
                for seed, f in frames.items()}
    averaged = users_mean_over_splits(frames) if len(frames) > 1 else None
    if averaged is not None and averaged.is_empty():
        averaged = None  # no user was evaluated on every split: the per-split tests are all there is
    over_splits = (holm([wilcoxon_p(averaged[c].to_numpy(), averaged[f"{c}_baseline"].to_numpy()) for c in columns])
                   if averaged is not None else [])
    rows = []
    for i, column in enumerate(columns):
        metric, k = column.split("@")
        row: dict[str, str | int] = {"metric": f"{metric[0].upper()}@{k}"}
        for seed, f in frames.items():
            diff = float(np.mean(f[column].to_numpy() - f[f"{column}_baseline"].to_numpy()))
            row[f"split {seed}: diff, Holm p"] = f"{diff:+.4f}, {adjusted[seed][i]:.2g}"
        row[f"splits with p < {level:g}"] = sum(adjusted[s][i] < level for s in frames)
        if averaged is not None:
            diff = float(np.mean(averaged[column].to_numpy() - averaged[f"{column}_baseline"].to_numpy()))
            row[f"mean of {len(frames)} splits ({averaged.height} users): diff, Holm p"] = (
                f"{diff:+.4f}, {over_splits[i]:.2g}")
        rows.append(row)
    return pl.DataFrame(rows)


def users_mean_over_splits(frames: dict[int, pl.DataFrame]) -> pl.DataFrame:
    """Each user's metrics (both methods') averaged over the splits, for the users evaluated on all of them."""
    stacked = pl.concat([f.with_columns(pl.lit(seed).alias("split_seed")) for seed, f in frames.items()],
                        how="vertical_relaxed")
    values = [c for c in stacked.columns if c not in ("user", "split_seed")]
    return (stacked.group_by("user").agg(pl.len().alias("splits"), *(pl.col(c).mean() for c in values))
            .filter(pl.col("splits") == len(frames)).drop("splits").sort("user"))


def compare_report(results_dir: Path, dataset: str, compare: Sequence[str]) -> str:
    """``pngnn report --compare METHOD:BASELINE``: the same-split differences of each pair, and the
    paired test over users where both runs recorded their per-user metrics."""
    parts = []
    for pair in compare:
        method, _, baseline = pair.partition(":")
        if not baseline:
            raise PngnnError(f"--compare takes METHOD:BASELINE, got '{pair}'; e.g. --compare pn-ease-tuned:ease-tuned")
        parts += [f"\n{method} - {baseline}, same splits:\n",
                  to_markdown(paired_differences(results_dir, dataset, method, baseline))]
        try:
            tests = paired_tests(results_dir, dataset, method, baseline)
        except PngnnError as exc:
            parts.append(f"\n(no paired test: {exc})")
            continue
        parts += [f"\n{method} vs {baseline}, Wilcoxon signed-rank over users, Holm-corrected over the 8 columns of "
                  "each split:\n", to_markdown(tests)]
    return "\n".join(parts)
