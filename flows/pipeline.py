"""The end-to-end pipeline: ingest -> split -> [augment -> merge] -> train -> evaluate, in MLflow.

The LLM steps run when a method needs them (``llm-lightgcn``, ``llm-pngnn``): ``augment``
proposes candidates with a LightGCN, asks the LLM about a seeded sample of users (answers
cached in DuckDB, so a rerun asks nothing twice), ``merge`` turns the answers into edges.

One parent MLflow run per flow run; one child run per (method, split) with params,
per-epoch loss, the model, final metrics and plots. The parent gets the mean and std
over splits of every metric.

Run it: ``pngnn run`` (embedded defaults) or ``python -m flows.pipeline``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import augment_split, log_summary
from pngnn.config import get_profile
from pngnn.methods import NEEDS_AUGMENTATION, check_method
from pngnn.settings import LLMSettings, Settings
from pngnn.tracking import parent_run
from tasks.data import ingest_task, split_task
from tasks.model import evaluate_task, train_task

# The main job: the baselines a practitioner would compare against (most-popular, EASE, iALS,
# LightGCN), our PN models (PN-EASE, PN-GNN), and PN-GNN on LLM-augmented graphs.
DEFAULT_METHODS = ("mostpop", "ease", "ials", "lightgcn", "pngnn", "pn-ease", "llm-pngnn")


@flow(name="pipeline", log_prints=True)
def pipeline(
    profile: str = "quick",
    dataset: str | None = None,
    seeds: list[int] | None = None,
    methods: list[str] | None = None,
    epochs: int | None = None,
    llm: LLMSettings | None = None,
) -> dict[str, Any]:
    """Train and evaluate ``methods`` on each split seed of a profile; returns metrics per method.

    ``llm``: which OpenAI-compatible server and model augment the graph, and how many users
    (default: the embedded SmolLM2 server, started and stopped by the augment step).
    """
    import mlflow

    prof = get_profile(profile)
    ds = dataset or prof.dataset
    seeds = seeds or list(prof.seeds)
    methods = [check_method(m) for m in (methods or list(DEFAULT_METHODS))]
    llm = LLMSettings.model_validate(llm or {})
    use_llm = any(m in NEEDS_AUGMENTATION for m in methods)
    cfg = prof.train.with_overrides(epochs=epochs)
    settings = Settings.from_env()
    results: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    with parent_run(settings, ds, f"pipeline-{profile}", tags={"profile": profile}) as parent_id:
        mlflow.log_params({"profile": profile, "dataset": ds, "seeds": ",".join(map(str, seeds)),
                           "methods": ",".join(methods)})
        data = ingest_task(ds)
        mlflow.log_param("dataset_checksum", data["checksum"])
        if use_llm:
            from pngnn.augment.prompts import PROMPT_TEMPLATE, PROMPT_VERSION

            mlflow.log_params({"llm_model": llm.model, "llm_base_url": llm.base_url or "embedded",
                               "llm_users": llm.users, "prompt_version": PROMPT_VERSION})
            mlflow.log_text(PROMPT_TEMPLATE, "augmentation/prompt_template.txt")
        for seed in seeds:
            split_task(ds, seed, prof.test_fraction, prof.valid_fraction)
            tags = augment_split(ds, seed, llm, parent_id) if use_llm else None
            for method in methods:
                extra = tags if method in NEEDS_AUGMENTATION else None
                run_id = train_task(ds, seed, method, cfg.to_dict(), profile, parent_id, tags=extra)
                results[method].append(evaluate_task(ds, seed, method, run_id, cfg.threshold))
        summary = log_summary(results)
    return {"parent_run_id": parent_id, "dataset": ds, "summary": summary}


if __name__ == "__main__":
    out = pipeline()
    print(out["summary"])
