"""Scheduled re-augmentation: the pipeline's augment steps (``flows.common.augment_split``; the
LLM cache answers what was asked before) with the current LLM and prompt, the LLM method
retrained on those edges as a new registered version, and the ``production`` alias moved when
it is better on recall@20. Deployed on a cron schedule by ``flows/serve.py``.
"""

from __future__ import annotations

from typing import Any

import mlflow
from prefect import flow

from flows.common import augment_split
from pngnn.app.parent_records import log_llm
from pngnn.augment.edges import dataset_wording
from pngnn.core.profiles import get_profile
from pngnn.core.settings import LLMSettings, Settings
from pngnn.tracking.registry import PROMOTION_METRIC
from pngnn.tracking.runs import parent_run
from pngnn.training.methods import NEEDS_AUGMENTATION, check_method
from tasks.data import ingest_task, llm_split_task, load_split_task, split_task
from tasks.model import train_evaluate_task
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
    prof = get_profile(profile)
    ds = dataset or prof.dataset
    seed = seed if seed is not None else prof.seeds[0]
    check_method(method)
    llm = LLMSettings.model_validate(llm or {})
    cfg = prof.train.with_overrides(epochs=epochs)
    settings = Settings.from_env()
    with parent_run(settings, ds, f"reaugment-{method}", tags={"profile": profile, "flow": "reaugment"}) as parent_id:
        mlflow.log_params({"profile": profile, "dataset": ds, "split_seed": seed, "method": method})
        ingest_task(ds)
        log_llm(llm, dataset_wording(settings, ds))
        split_task(ds, seed, **prof.split_args())
        split = load_split_task(ds, seed)
        tags = augment_split(split, llm, parent_id)
        mlflow.set_tags(tags)
        train_split = llm_split_task(split, tags) if method in NEEDS_AUGMENTATION else split
        out = train_evaluate_task(ds, seed, method, cfg.to_dict(), profile, parent_id, tags=tags, promote_first=False,
                                  split=train_split)
        decision = promote_task(ds, method, out["run_id"], PROMOTION_METRIC) if promote else None
        if decision is not None:
            mlflow.set_tag("promoted", str(decision["promoted"]).lower())
    return {"parent_run_id": parent_id, "run_id": out["run_id"], "metrics": out["metrics"], "promotion": decision}
