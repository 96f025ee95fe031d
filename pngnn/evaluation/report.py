"""The paper's Table 1 from in-memory runs: mean and std over splits, as CSV, Markdown, bar charts.

Input: ``{method: [metrics of split 1, metrics of split 2, ...]}`` with metric names as
``pngnn.evaluation.evaluate`` gives them (``precision@5``, ``recall@20``...). Aggregation is
``pngnn.evaluation.metrics.aggregate`` (mean, sample std). Used by the experiment flow; pure
functions, no tracking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from pngnn.core.constants import KS, METRIC_NAMES, TABLE_METRICS
from pngnn.evaluation.metrics import aggregate
from pngnn.evaluation.tables import PAPER, to_markdown


def _short(metric: str, k: int) -> str:
    return f"{metric[0].upper()}@{k}"


def summary_frame(runs: Mapping[str, Sequence[Mapping[str, float]]], ks: Sequence[int] = KS) -> pl.DataFrame:
    """One row per method: splits, then <metric>@<k>_mean and _std for P, R and NDCG at each k."""
    rows = []
    for method, metrics in runs.items():
        agg = aggregate(list(metrics))
        row: dict[str, object] = {"method": method, "splits": len(metrics)}
        for name in METRIC_NAMES:
            for k in ks:
                key = f"{name}@{k}"
                if key in agg:
                    row[f"{key}_mean"], row[f"{key}_std"] = agg[key]
        rows.append(row)
    return pl.DataFrame(rows)


def markdown_table(summary: pl.DataFrame, ks: Sequence[int] = KS, paper: bool = False) -> str:
    """P@K and R@K as 'mean ± std' per method (the paper's layout), optionally with the paper's rows."""
    rows = []
    for r in summary.iter_rows(named=True):
        row = {"method": r["method"], "splits": r["splits"]}
        for name in TABLE_METRICS:
            for k in ks:
                row[_short(name, k)] = f"{r[f'{name}@{k}_mean']:.4f} ± {r[f'{name}@{k}_std']:.4f}"
        rows.append(row)
        if paper and r["method"] in PAPER:
            ref = {"method": f"{r['method']} (paper)", "splits": 3}
            for name in TABLE_METRICS:
                for k in ks:
                    v = PAPER[r["method"]].get(f"{name}@{k}")
                    ref[_short(name, k)] = "-" if v is None else f"{v:.4f}"
            rows.append(ref)
    return to_markdown(pl.DataFrame(rows))


def bar_chart(summary: pl.DataFrame, path: Path, title: str, ks: Sequence[int] = KS) -> Path:
    """Grouped bars: P@K (left) and R@K (right), one bar per method, std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    methods = summary["method"].to_list()
    width = 0.8 / max(len(methods), 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=False)
    for ax, name in zip(axes, TABLE_METRICS, strict=True):
        x = np.arange(len(ks))
        for i, method in enumerate(methods):
            row = summary.row(i, named=True)
            means = [row[f"{name}@{k}_mean"] for k in ks]
            stds = [row[f"{name}@{k}_std"] for k in ks]
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=method)
        ax.set_xticks(x, [_short(name, k) for k in ks])
        ax.set_title(f"{name} (mean ± std over splits)")
    axes[0].legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def segment_keys(metric: str = "recall@20") -> list[str]:
    """The ``<segment>/<metric>`` keys of ``metric`` (long-tail items carry recall only)."""
    from pngnn.evaluation.segments import LONG_TAIL, SEGMENTS

    k = metric[metric.index("@"):]
    return [f"{seg}/{'recall' + k if seg == LONG_TAIL else metric}" for seg in SEGMENTS]


def segments_frame(runs: Mapping[str, Sequence[Mapping[str, float]]], metric: str = "recall@20") -> pl.DataFrame:
    """One row per method whose every split carries all segments: splits, then each segment's
    ``<key>_mean`` and ``<key>_std`` (sample std; 0 for one split). Empty when no method has them."""
    keys = segment_keys(metric)
    rows = []
    for method, metrics in runs.items():
        if not metrics or not all(k in m for m in metrics for k in keys):
            continue
        agg = aggregate([{k: m[k] for k in keys} for m in metrics])
        row: dict[str, object] = {"method": method, "splits": len(metrics)}
        for key in keys:
            row[f"{key}_mean"], row[f"{key}_std"] = agg[key]
        rows.append(row)
    return pl.DataFrame(rows)


def segments_chart(frame: pl.DataFrame, path: Path, title: str, metric: str = "recall@20") -> Path:
    """Grouped bars, one bar per method with the std over splits as error bars: the users by
    activity (quartiles, sparsest 10%) on the left, long-tail items on the right on their own
    scale (their recall is an order of magnitude lower): who wins where, at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = segment_keys(metric)
    panels = (keys[:-1], keys[-1:])  # SEGMENTS ends with the long-tail items
    methods = frame["method"].to_list()
    width = 0.8 / max(len(methods), 1)
    fig, axes = plt.subplots(1, 2, figsize=(8 + 0.3 * len(methods), 4), width_ratios=(5, 1.3))
    for ax, panel in zip(axes, panels, strict=True):
        x = np.arange(len(panel))
        for i, row in enumerate(frame.iter_rows(named=True)):
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, [row[f"{k}_mean"] for k in panel], width,
                   yerr=[row[f"{k}_std"] for k in panel], capsize=2, label=f"{row['method']} ({row['splits']} splits)")
        ax.set_xticks(x, [k.split("/")[0].replace("users_", "").replace("_", " ") for k in panel])
        ax.set_ylabel(panel[0].split("/")[1])
    axes[0].set_title("users by train activity (q1 = sparsest)")
    axes[1].set_title("long-tail items")
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{title}: mean ± std over splits")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(runs: Mapping[str, Sequence[Mapping[str, float]]], out_dir: Path, title: str,
                 paper: bool = False, ks: Sequence[int] = KS) -> dict[str, Path]:
    """table.csv (numbers), table.md (the paper's layout), precision_recall_by_method.png into
    out_dir; and recall_by_segment.png (key ``segments``) when any method's runs carry segments."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summary_frame(runs, ks)
    csv = out_dir / "table.csv"
    summary.write_csv(csv)
    md = out_dir / "table.md"
    md.write_text(f"# {title}\n\n{markdown_table(summary, ks, paper)}\n")
    png = bar_chart(summary, out_dir / "precision_recall_by_method.png", title, ks)
    paths = {"csv": csv, "markdown": md, "chart": png}
    segments = segments_frame(runs)
    if segments.height:
        paths["segments"] = segments_chart(segments, out_dir / "recall_by_segment.png", title)
    return paths
