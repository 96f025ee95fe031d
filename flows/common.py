"""Steps shared by the flows: the LLM augmentation of one split, and the summary over splits."""

from __future__ import annotations

from pngnn.metrics import aggregate
from pngnn.settings import LLMSettings
from pngnn.tracking import metric_key
from tasks.augment import augment_task, llm_tags, merge_task, pretrain_task


def augment_split(dataset: str, seed: int, llm: LLMSettings, parent_run_id: str) -> dict[str, str]:
    """pretrain (cached) -> augment (LLM answers cached in DuckDB) -> merge, for one split.

    Returns the MLflow tags (LLM model, prompt version) of the runs trained on these edges.
    """
    pretrain_task(dataset, seed, llm)
    counts = augment_task(dataset, seed, llm, parent_run_id, merge=False)
    counts.update(merge_task(dataset, seed, counts["model"], parent_run_id))
    return llm_tags(llm, counts)


def log_summary(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean and std over splits of every metric of every method, as metrics and summary.json
    of the active (parent) MLflow run."""
    import mlflow

    summary: dict[str, dict[str, float]] = {}
    for method, runs in results.items():
        for name, (mean, std) in aggregate(runs).items():
            summary[f"{method}/{name}"] = {"mean": mean, "std": std}
            mlflow.log_metric(f"{method}_{metric_key(name)}_mean", mean)
            mlflow.log_metric(f"{method}_{metric_key(name)}_std", std)
    mlflow.log_dict(summary, "summary.json")
    return summary


