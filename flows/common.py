"""What the flows share: the methods x splits loop (pipeline and experiment) and the LLM
augmentation of one split (pipeline, experiment, reaugment)."""

from __future__ import annotations

from typing import Any

import mlflow

from pngnn.app.parent_records import log_augment_counts, log_llm, log_summary
from pngnn.augment.edges import EdgeSource, dataset_wording
from pngnn.augment.step import edges_line
from pngnn.core.config import Profile, TrainConfig, check_seeds
from pngnn.core.profiles import get_profile, method_profiles
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data.split import SplitData
from pngnn.evaluation.results import summary_table
from pngnn.evaluation.tables import to_markdown
from pngnn.tracking.runs import parent_run
from pngnn.training.methods import NEEDS_AUGMENTATION, check_method
from tasks.augment import augment_task, merge_task, pretrain_task
from tasks.data import ingest_task, llm_split_task, load_split_task, split_task
from tasks.grid import GridTrainer
from tasks.links import artifact_key, prefect_tags, publish_run_links
from tasks.llm_fanout import fanout_augment, fans_out


def augment_split(split: SplitData, llm: LLMSettings, parent_run_id: str) -> dict[str, str]:
    """pretrain (cached) -> augment (LLM answers cached in DuckDB) -> merge, for one split (as the
    flow loaded it); the counts go to the parent run. Returns the tags (LLM model, prompt version)
    of the runs trained on these edges. The augmentation is one task, or mapped chunk tasks when
    ``fans_out`` (a Dask runner or a rate limit, and an LLM server of the user's)."""
    dataset, seed = split.dataset, split.seed
    pretrain_task(dataset, seed, llm, split)
    if fans_out(llm):
        counts = fanout_augment(Settings.from_env(), dataset, seed, LLMSettings.model_validate(llm), split=split)
    else:
        counts = augment_task(dataset, seed, llm, parent_run_id, split)
    counts.update(merge_task(dataset, seed, counts["model"], parent_run_id, llm.scoring))
    print(edges_line(dataset, seed, counts))
    log_augment_counts(parent_run_id, seed, counts)
    return EdgeSource.of(llm, counts).tags()


def run_grid(dataset: str, seeds: list[int], base: Profile, profiles: dict[str, Profile], cfg: TrainConfig,
             llm: LLMSettings, parent_run_id: str) -> dict[str, list[dict[str, float]]]:
    """Every method on every split seed (each split augmented first when a method needs LLM
    edges), each a child run of ``parent_run_id``; the test metrics per method, in seed order.
    A method on the base profile trains with ``cfg`` (the base settings with the flow's
    overrides), a method with a tuned profile with that profile's settings for the seed."""
    use_llm = any(m in NEEDS_AUGMENTATION for m in profiles)
    if use_llm:
        log_llm(llm, dataset_wording(Settings.from_env(), dataset))
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in profiles}
    grid = GridTrainer()  # trains at once on threads; on Dask, maps every training after the loop
    for seed in seeds:
        split_task(dataset, seed, **base.split_args())
        split = load_split_task(dataset, seed)  # once a split: every task below is handed it
        tags = augment_split(split, llm, parent_run_id) if use_llm else None
        llm_split = llm_split_task(split, tags) if use_llm else None
        for method, prof in profiles.items():
            method_cfg = cfg if prof.name == base.name else prof.config_for(seed)
            needs_edges = method in NEEDS_AUGMENTATION
            grid.add(llm_split if needs_edges else split, method, method_cfg.to_dict(), prof.name, parent_run_id,
                     tags=tags if needs_edges else None)
    runs.update(grid.metrics())
    return runs


def grid_flow_body(flow_name: str, profile: str, dataset: str | None, seeds: list[int] | None,
                   methods: list[str], epochs: int | None, llm: LLMSettings | dict | None,
                   tuned: dict[str, str] | None) -> dict[str, Any]:
    """The pipeline and experiment flows: ingest, then ``run_grid`` under one parent run tagged
    with the flow, then the summary. Returns the parent run id, dataset, runs and summary."""
    settings = Settings.from_env()
    base = get_profile(profile, settings)
    ds = dataset or base.dataset
    seeds = check_seeds(seeds or base.seeds)
    methods = [check_method(m) for m in methods]
    llm = LLMSettings.model_validate(llm or {})
    cfg = base.train.with_overrides(epochs=epochs)
    profiles = method_profiles(methods, ds, base, tuned, settings)
    tags = {"profile": profile, "flow": flow_name, **prefect_tags()}
    with parent_run(settings, ds, f"{flow_name}-{profile}", tags=tags) as parent_id:
        mlflow.log_params({"profile": profile, "dataset": ds, "seeds": ",".join(map(str, seeds)),
                           "methods": ",".join(methods), **{f"train_{k}": v for k, v in cfg.to_dict().items()},
                           **{f"profile_{m}": p.name for m, p in profiles.items()}})
        data = ingest_task(ds)
        mlflow.log_param("dataset_checksum", data["checksum"])
        runs = run_grid(ds, seeds, base, profiles, cfg, llm, parent_id)
        summary = log_summary(runs)
    table = to_markdown(summary_table(summary))
    publish_run_links(settings, parent_id, f"{flow_name} {profile}: {ds}, splits {seeds}", table,
                      key=artifact_key(flow_name, profile, ds))
    return {"parent_run_id": parent_id, "dataset": ds, "runs": runs, "summary": summary, "table": table}
