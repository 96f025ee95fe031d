"""What a flow's parent MLflow run records besides its child runs: the LLM and prompt that made
the edges, each split's augmentation counts, and the mean and std over splits of every metric.

Prefect-free, so every flow (pipeline, experiment, reaugment) writes the same record and a
test can read it back without a flow run.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric

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
    """A split's augment and merge counts as ``augment_seed<N>_*`` metrics of ``run_id``."""
    now = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(run_id, metrics=[
        Metric(f"augment_seed{seed}_{k}", float(v), now, 0) for k, v in counts.items()
        if isinstance(v, int | float) and not isinstance(v, bool)])


def log_summary(results: Mapping[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean and std over splits of every metric of every method, as metrics and summary.json
    of the active (parent) run."""
    summary: dict[str, dict[str, float]] = {}
    for method, runs in results.items():
        for name, (mean, std) in aggregate(runs).items():
            summary[f"{method}/{name}"] = {"mean": mean, "std": std}
            mlflow.log_metric(f"{method}_{metric_key(name)}_mean", mean)
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
