"""Scheduled re-augmentation that learns from new data, deployed on a cron schedule by ``flows/serve.py``.

Each run (a) appends what arrived at ``source`` since the last run (a file, a glob or a DuckDB table
of a user's dataset; rows already ingested are skipped), (b) asks the LLM only about users not asked
yet or whose train history changed, at most ``llm_budget`` prompts (``pngnn.augment.incremental``),
(c) retrains ``method`` on the split and its LLM edges, (d) registers a model version only when the
model's inputs changed (``pngnn.tracking.inputs``: a run on unchanged inputs trains nothing), and (e)
moves ``production`` when the new version beats it on the split's validation part
(``pngnn.tracking.holdout``), never on test. The run publishes what changed as a Markdown artifact
keyed by dataset and method, so the Artifacts page keeps its history week by week.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import mlflow
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from pngnn.app.parent_records import log_augment_counts, log_llm
from pngnn.app.reaugment_report import reaugment_markdown
from pngnn.augment.edges import EdgeSource, dataset_wording
from pngnn.core.constants import REAUGMENT_LLM_BUDGET, REAUGMENT_VALID_FRACTION
from pngnn.core.errors import PngnnError
from pngnn.core.profiles import get_profile
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data.protocols import check_protocol
from pngnn.tracking.inputs import INPUTS_TAG, inputs_digest, latest_inputs
from pngnn.tracking.registry import model_name, version_of_run
from pngnn.tracking.runs import parent_run
from pngnn.training.methods import NEEDS_AUGMENTATION, check_method
from tasks.augment import reaugment_task
from tasks.data import append_task, ingest_task, llm_split_task, load_split_task, split_task
from tasks.links import artifact_key
from tasks.model import train_evaluate_task
from tasks.registry import holdout_promote_task


def check_reaugment_options(llm_budget: int, valid_fraction: float) -> None:
    """Bad options in one line before any work."""
    if llm_budget < 0:
        raise PngnnError(f"llm_budget must be 0 or more prompts a run, got {llm_budget}",
                         "set it to the prompts one run may send (0: ask nobody, retrain on the new data only)")
    if not 0.0 < valid_fraction < 1.0:
        raise PngnnError(f"valid_fraction must lie strictly between 0 and 1, got {valid_fraction}",
                         "promotion is decided on the validation part: use e.g. 0.1")


@flow(name="reaugment", log_prints=True)
def reaugment(
    profile: str = "quick",
    dataset: str | None = None,
    seed: int | None = None,
    method: str = "llm-pngnn",
    epochs: int | None = None,
    llm: LLMSettings | None = None,
    promote: bool = True,
    source: str | None = None,
    columns: str | None = None,
    items: str | None = None,
    item_columns: str | None = None,
    llm_budget: int = REAUGMENT_LLM_BUDGET,
    valid_fraction: float = REAUGMENT_VALID_FRACTION,
    split: str | None = None,
    last_n: int | None = None,
) -> dict[str, Any]:
    """Append ``source``, ask new and changed users within ``llm_budget``, retrain ``method`` on split
    ``seed`` when its inputs changed, promote on validation. ``columns``/``items``/``item_columns``
    as for ``pngnn ingest --append``; ``valid_fraction``: the validation part carved from train when
    the profile has none (promotion is decided there); ``split``/``last_n``: the split protocol
    (default: the profile's; a growing log wants ``temporal`` or ``last``, under which the users with
    no new data keep their train history and so their answers)."""
    prof = get_profile(profile)
    if split is not None or last_n is not None:
        protocol = check_protocol(split or prof.split_protocol, last_n or prof.last_n)
        prof = replace(prof, split_protocol=protocol, last_n=last_n or prof.last_n)
    ds = dataset or prof.dataset
    seed = seed if seed is not None else prof.seeds[0]
    check_method(method)
    check_reaugment_options(llm_budget, valid_fraction)
    llm = LLMSettings.model_validate(llm or {})
    cfg = prof.train.with_overrides(epochs=epochs)
    settings = Settings.from_env()
    with parent_run(settings, ds, f"reaugment-{method}", tags={"profile": profile, "flow": "reaugment"}) as parent_id:
        mlflow.log_params({"profile": profile, "dataset": ds, "split_seed": seed, "method": method,
                           "llm_budget": llm_budget, "source": source or "none", "split": prof.split_protocol})
        appended = append_task(ds, source, columns, items, item_columns) if source else None
        ingest_task(ds)
        split_task(ds, seed, **{**prof.split_args(), "valid_fraction": prof.valid_fraction or valid_fraction})
        data = load_split_task(ds, seed)
        counts, tags, train_split = None, None, data
        if method in NEEDS_AUGMENTATION:
            log_llm(llm, dataset_wording(settings, ds))
            counts = reaugment_task(data, llm, llm_budget, parent_id)
            log_augment_counts(parent_id, seed, counts)
            tags = EdgeSource.of(llm, counts).tags()
            mlflow.set_tags(tags)
            train_split = llm_split_task(data, tags)
        digest = inputs_digest(train_split, method, cfg.to_dict())
        latest_version, latest_digest = latest_inputs(settings, ds, method)
        model: dict[str, Any] = {"retrained": digest != latest_digest, "latest_version": latest_version,
                                 "digest": digest, "version": None}
        out, decision = None, None
        if model["retrained"]:
            out = train_evaluate_task(ds, seed, method, cfg.to_dict(), profile, parent_id,
                                      tags={**(tags or {}), INPUTS_TAG: digest}, promote_first=False,
                                      split=train_split)
            model["version"] = version_of_run(settings, ds, method, out["run_id"])
            decision = holdout_promote_task(ds, method, out["run_id"], data) if promote else None
            if decision is not None:
                mlflow.set_tag("promoted", str(decision["promoted"]).lower())
        else:
            print(f"{model_name(ds, method)}: inputs unchanged since v{latest_version} (digest {digest}); "
                  "nothing retrained or registered")
        mlflow.set_tag("retrained", str(model["retrained"]).lower())
        report = reaugment_markdown(ds, method, seed, appended, counts, model, decision,
                                    out["metrics"] if out else None)
        mlflow.log_text(report, "reaugment.md")
    print(report)
    create_markdown_artifact(key=artifact_key("reaugment", ds, method), markdown=report,
                             description=f"what reaugment {method} changed on {ds}")
    return {"parent_run_id": parent_id, "run_id": out["run_id"] if out else None,
            "metrics": out["metrics"] if out else None, "promotion": decision, "appended": appended,
            "augmentation": counts, "model": model, "report": report}
