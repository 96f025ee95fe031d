"""The end-to-end pipeline: ingest -> split -> train -> evaluate, tracked in MLflow.

One parent MLflow run per flow run; one child run per (method, split) with params,
per-epoch loss, the model, final metrics and plots. The parent gets the mean and std
over splits of every metric.

Run it: ``pngnn run`` (embedded defaults) or ``python -m flows.pipeline``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from pngnn.config import Settings, get_profile
from pngnn.methods import check_method
from pngnn.metrics import aggregate
from pngnn.tracking import metric_key, parent_run
from tasks.data import ingest_task, split_task
from tasks.model import evaluate_task, train_task


@flow(name="pipeline", log_prints=True)
def pipeline(
    profile: str = "quick",
    dataset: str | None = None,
    seeds: list[int] | None = None,
    methods: list[str] | None = None,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Train and evaluate ``methods`` on each split seed of a profile; returns metrics per method."""
    import mlflow

    prof = get_profile(profile)
    ds = dataset or prof.dataset
    seeds = seeds or list(prof.seeds)
    methods = [check_method(m) for m in (methods or ["mostpop", "lightgcn"])]
    cfg = prof.train.with_overrides(epochs=epochs)
    settings = Settings.from_env()
    results: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    with parent_run(settings, ds, f"pipeline-{profile}", tags={"profile": profile}) as parent_id:
        mlflow.log_params({"profile": profile, "dataset": ds, "seeds": ",".join(map(str, seeds)),
                           "methods": ",".join(methods)})
        data = ingest_task(ds)
        mlflow.log_param("dataset_checksum", data["checksum"])
        for seed in seeds:
            split_task(ds, seed, prof.test_fraction, prof.valid_fraction)
            for method in methods:
                run_id = train_task(ds, seed, method, cfg.to_dict(), profile, parent_id)
                results[method].append(evaluate_task(ds, seed, method, run_id, cfg.threshold))
        summary = {}
        for method, runs in results.items():
            for name, (mean, std) in aggregate(runs).items():
                summary[f"{method}/{name}"] = {"mean": mean, "std": std}
                mlflow.log_metric(f"{method}_{metric_key(name)}_mean", mean)
                mlflow.log_metric(f"{method}_{metric_key(name)}_std", std)
        mlflow.log_dict(summary, "summary.json")
    return {"parent_run_id": parent_id, "dataset": ds, "summary": summary}


if __name__ == "__main__":
    out = pipeline()
    print(out["summary"])
