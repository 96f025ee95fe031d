"""Scheduled re-augmentation: ask the current LLM and prompt again, retrain, promote if better.

ingest -> split (both cached) -> augment (current LLM model and prompt version; the LLM
cache answers what was already asked) -> train the LLM method (a child MLflow run, a new
registered version of ``pngnn-<dataset>-<method>``) -> evaluate -> compare with the
``production`` alias on recall@20 and move the alias when the new version is better.

The augmentation itself is ``pngnn.augment`` (issue 4): while it has no ``augment_step``
the ``augment`` task fails with a message that says so, and nothing is trained.

Deployed with a cron schedule by ``flows/serve.py``; run it by hand with
``prefect deployment run 'reaugment/weekly'``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from pngnn.config import get_profile
from pngnn.methods import check_method
from pngnn.registry import PROMOTION_METRIC
from pngnn.settings import LLMSettings, Settings
from pngnn.tracking import parent_run
from tasks.augment import augment_task, llm_tags, pretrain_task
from tasks.data import ingest_task, split_task
from tasks.model import evaluate_task, train_task
from tasks.registry import promote_task


@flow(name="reaugment", log_prints=True)
def reaugment(
    profile: str = "quick",
    dataset: str | None = None,
    seed: int | None = None,
    method: str = "llm-pngnn",
    epochs: int | None = None,
    llm: LLMSettings | None = None,
    promote: bool = True,
) -> dict[str, Any]:
    """Re-run augmentation with ``llm``, retrain ``method`` on split ``seed``, compare with production."""
    import mlflow

    prof = get_profile(profile)
    ds = dataset or prof.dataset
    seed = seed if seed is not None else prof.seeds[0]
    check_method(method)
    llm = LLMSettings.model_validate(llm or {})
    cfg = prof.train.with_overrides(epochs=epochs)
    settings = Settings.from_env()
    with parent_run(settings, ds, f"reaugment-{method}", tags={"profile": profile, "flow": "reaugment"}) as parent_id:
        mlflow.log_params({"profile": profile, "dataset": ds, "split_seed": seed, "method": method,
                           "llm_model": llm.model, "llm_base_url": llm.base_url or "embedded",
                           "llm_users": llm.users if llm.users is not None else "all"})
        ingest_task(ds)
        split_task(ds, seed, prof.test_fraction, prof.valid_fraction)
        pretrain_task(ds, seed, llm)
        counts = augment_task(ds, seed, llm, parent_id)
        tags = llm_tags(llm, counts)
        mlflow.set_tags(tags)
        mlflow.log_metrics({f"augment_{k}": float(v) for k, v in counts.items() if isinstance(v, int | float)})
        run_id = train_task(ds, seed, method, cfg.to_dict(), profile, parent_id, tags=tags)
        metrics = evaluate_task(ds, seed, method, run_id, cfg.threshold)
        decision = promote_task(ds, method, run_id, PROMOTION_METRIC) if promote else None
        if decision is not None:
            mlflow.set_tag("promoted", str(decision["promoted"]).lower())
    return {"parent_run_id": parent_id, "run_id": run_id, "metrics": metrics, "promotion": decision,
            "augmentation": counts}


if __name__ == "__main__":
    print(reaugment())
