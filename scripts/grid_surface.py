"""The validation surface of a grid study (`pngnn tune --grid`): the metric over two settings,
each cell the best over the settings not shown, averaged over the study's splits.

A study record holds every trial of one split; a grid's surface is what a reader wants to see
(is the optimum inside the grid, how flat is it), so this prints it as a markdown table per
panel and draws the same numbers as heatmaps.

    python scripts/grid_surface.py results/tuning/ml-1m/pn-ease/seed*_study.json \
        --rows ease_lambda --cols disliked_input --panel pn_dropout --plot docs/img/pn-ease-surface.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl


def trials_frame(studies: Sequence[Path]) -> pl.DataFrame:
    """One row per completed trial of every study: its split seed, value and parameters."""
    rows: list[dict[str, Any]] = []
    for path in studies:
        record = json.loads(path.read_text())
        rows += [{"seed": record["seed"], "value": t["value"], **t["params"]}
                 for t in record["trials"] if t["state"] == "COMPLETE"]
    if not rows:
        raise SystemExit(f"no completed trial in {', '.join(map(str, studies))}")
    return pl.DataFrame(rows)


def surface(frame: pl.DataFrame, rows: str, cols: str, panel: str | None = None) -> pl.DataFrame:
    """Per (panel, rows, cols) cell: the best value over the other settings within each split,
    then the mean over splits (a cell counts only the splits that tried it)."""
    keys = [k for k in (panel, rows, cols) if k]
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise SystemExit(f"the study has no setting {', '.join(missing)}; it has {', '.join(frame.columns[2:])}")
    best = frame.group_by(["seed", *keys]).agg(pl.col("value").max())
    return best.group_by(keys).agg(pl.col("value").mean(), pl.col("seed").n_unique().alias("splits")).sort(keys)


def markdown(cells: pl.DataFrame, rows: str, cols: str, panel: str | None = None) -> str:
    """A table per panel value: rows down, columns across, the best cell in bold."""
    out: list[str] = []
    panels = cells[panel].unique().sort().to_list() if panel else [None]
    top = cells["value"].max()
    for value in panels:
        part = cells.filter(pl.col(panel) == value) if panel else cells
        col_values = part[cols].unique().sort().to_list()
        if panel:
            out.append(f"{panel} = {value}\n")
        out.append("| " + " | ".join([f"{rows} \\ {cols}", *map(str, col_values)]) + " |")
        out.append("|" + "---|" * (len(col_values) + 1))
        for row_value in part[rows].unique().sort().to_list():
            line = part.filter(pl.col(rows) == row_value)
            lookup = dict(zip(line[cols].to_list(), line["value"].to_list(), strict=True))
            texts = [("**{:.4f}**" if lookup.get(c) == top else "{:.4f}").format(lookup[c]) if c in lookup else "-"
                     for c in col_values]
            out.append("| " + " | ".join([str(row_value), *texts]) + " |")
        out.append("")
    return "\n".join(out)


def plot(cells: pl.DataFrame, rows: str, cols: str, panel: str | None, path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = cells[panel].unique().sort().to_list() if panel else [None]
    parts = [cells.filter(pl.col(panel) == value) if panel else cells for value in panels]
    # the heatmaps share their axes: only the row and column values every panel has (a base trial
    # off the grid shows in the table, not as a stray row here)
    row_values = sorted(set.intersection(*(set(part[rows].to_list()) for part in parts)))
    col_values = sorted(set.intersection(*(set(part[cols].to_list()) for part in parts)))
    shown = [part.filter(pl.col(rows).is_in(row_values) & pl.col(cols).is_in(col_values)) for part in parts]
    low = min(part["value"].min() for part in shown)
    high = max(part["value"].max() for part in shown)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 1.2, 3.8), squeeze=False,
                             layout="constrained")
    for i, (ax, value, part) in enumerate(zip(axes[0], panels, shown, strict=True)):
        grid = part.pivot(on=cols, index=rows, values="value", sort_columns=True).sort(rows)
        col_names = [c for c in grid.columns if c != rows]
        image = ax.imshow(grid.select(col_names).to_numpy(), vmin=low, vmax=high, cmap="viridis", aspect="auto",
                          origin="lower")
        ax.set_xticks(range(len(col_names)), [f"{float(c):g}" for c in col_names])
        ax.set_yticks(range(grid.height), [f"{v:g}" for v in grid[rows].to_list()])
        ax.set_xlabel(cols)
        if i == 0:
            ax.set_ylabel(rows)
        if panel:
            ax.set_title(f"{panel} = {value}")
    fig.colorbar(image, ax=axes[0].tolist(), label=f"validation {metric} (best over the rest, mean of splits)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+", type=Path, help="seed<N>_study.json records of one study")
    parser.add_argument("--rows", required=True)
    parser.add_argument("--cols", required=True)
    parser.add_argument("--panel", help="a third setting: one table (and heatmap) per value")
    parser.add_argument("--plot", type=Path, help="also draw the heatmaps into this PNG")
    args = parser.parse_args(argv)
    frame = trials_frame(args.studies)
    cells = surface(frame, args.rows, args.cols, args.panel)
    print(markdown(cells, args.rows, args.cols, args.panel))
    if args.plot:
        metric = json.loads(args.studies[0].read_text())["metric"]
        plot(cells, args.rows, args.cols, args.panel, args.plot, metric)


if __name__ == "__main__":
    main()
