"""What a flow's parent MLflow run records besides its child runs: the LLM and prompt that made
the edges, each split's augmentation counts (as JSON), the mean and std over splits of every metric (a
few headline ones as metrics, all of them in summary.json).

Prefect-free, so every flow (pipeline, experiment, reaugment) writes the same record and a
test can read it back without a flow run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow

from pngnn.augment.wording import Wording
from pngnn.core.settings import LLMSettings
from pngnn.evaluation.metrics import aggregate
from pngnn.evaluation.report import write_report
from pngnn.tracking.runs import metric_key


def log_llm(llm: LLMSettings, wording: Wording) -> None:
    """The LLM, its server, how many users it is asked about, and the prompt (the dataset's
    wording), on the active run."""
    mlflow.log_params({"llm_model": llm.model, "llm_base_url": llm.base_url or "embedded",
                       "llm_users": llm.users if llm.users is not None else "all", "prompt_version": wording.version})
    mlflow.log_text(wording.template(), "augmentation/prompt_template.txt")


def log_augment_counts(run_id: str, seed: int, counts: Mapping[str, Any]) -> None:
    """A split's augment and merge counts as ``augmentation/seed<N>_counts.json`` of ``run_id``: a
    record to read, not metrics (as metrics, ten a split crowded the runs table's columns)."""
    numbers = {k: v for k, v in counts.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    mlflow.MlflowClient().log_dict(run_id, numbers, f"augmentation/seed{seed}_counts.json")


# What the parent run shows per method as metrics, to sort the methods by in the runs table: the
# headline columns' means, and recall@20's spread when there are splits to spread over. Every
# other mean and std is in summary.json and the report table beside it.
SUMMARY_METRICS = ("precision@5", "recall@20", "ndcg@20")
SPREAD_METRIC = "recall@20"


def log_summary(results: Mapping[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean and std over splits of every metric of every method into summary.json of the active
    (parent) run; the headline means (and recall@20's std over two or more splits) as metrics."""
    summary: dict[str, dict[str, float]] = {}
    for method, runs in results.items():
        for name, (mean, std) in aggregate(runs).items():
            summary[f"{method}/{name}"] = {"mean": mean, "std": std}
            if name in SUMMARY_METRICS:
                mlflow.log_metric(f"{method}_{metric_key(name)}_mean", mean)
            if name == SPREAD_METRIC and len(runs) > 1:
                mlflow.log_metric(f"{method}_{metric_key(name)}_std", std)
    mlflow.log_dict(summary, "summary.json")
    return summary


def log_report(dataset: str, runs: Mapping[str, Sequence[Mapping[str, float]]], run_id: str,
               out_dir: Path | None = None) -> str:
    """table.csv, table.md (next to the paper's rows on ML-1M), the P@K/R@K bar chart and, when
    the runs carry segments, the recall-by-segment chart of ``runs`` into ``run_id`` (and
    ``out_dir`` when given); returns the Markdown table."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_report(runs, out_dir or Path(tmp), f"{dataset}: {', '.join(runs)} over splits",
                             paper=dataset == "ml-1m")
        for kind, path in paths.items():
            mlflow.MlflowClient().log_artifact(run_id, str(path), "report" if kind in ("csv", "markdown") else "plots")
        return paths["markdown"].read_text()
