"""The paper's Table 1 as a flow: methods x split seeds, mean and std, table and chart in MLflow.

One parent MLflow run (``experiment-<profile>``) with one child run per (method, split)
(the same ``train``/``evaluate`` tasks as the pipeline, so the UI's compare view lines
the methods up by their ``method`` and ``split`` tags). The parent gets the mean and std
of every metric per method, ``report/table.csv``, ``report/table.md`` and
``plots/precision_recall_by_method.png``.

Methods: the four of the paper (``TABLE1_METHODS``) and the baselines a practitioner would
pick (``BASELINES``: EASE, iALS) next to our closed-form PN model (``pn-ease``). A method with a
tuned profile (``tuned={"ease": "ease-ml-1m", ...}``, or by default the profile named
``<method>-<dataset>`` when one is saved) trains with that profile's configuration for each
split; the others with the base profile's. A method whose name starts with ``llm-`` trains on
LLM edges: the flow runs the ``augment`` task for each split first and tags its runs with the
LLM model and prompt version.

Run it: ``prefect deployment run 'experiment/table1'`` (see docs/orchestration.md) or
``python -m flows.experiment``.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import augment_split, log_summary
from pngnn.config import Profile, get_profile
from pngnn.methods import NEEDS_AUGMENTATION, check_method
from pngnn.settings import LLMSettings, Settings
from pngnn.tracking import parent_run
from tasks.data import ingest_task, split_task
from tasks.model import evaluate_task, train_task
from tasks.report import report_task

TABLE1_METHODS = ("lightgcn", "pngnn", "llm-lightgcn", "llm-pngnn")
BASELINES = ("ease", "ials", "pn-ease")


def default_methods() -> list[str]:
    return [*TABLE1_METHODS, *BASELINES]


def method_profiles(methods: list[str], dataset: str, base: str, tuned: dict[str, str] | None,
                    settings: Settings) -> dict[str, Profile]:
    """The profile each method trains with: ``tuned[method]``, else a saved ``<method>-<dataset>``, else ``base``."""
    out = {}
    for method in methods:
        name = (tuned or {}).get(method)
        if name is None and (settings.profiles_dir / f"{method}-{dataset}.json").is_file():
            name = f"{method}-{dataset}"
        out[method] = get_profile(name or base, settings)
    return out


def needs_llm(method: str) -> bool:
    return method in NEEDS_AUGMENTATION


@flow(name="experiment", log_prints=True)
def experiment(
    profile: str = "paper",
    dataset: str | None = None,
    seeds: list[int] | None = None,
    methods: list[str] | None = None,
    epochs: int | None = None,
    llm: LLMSettings | None = None,
    out_dir: str | None = None,
    tuned: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train and evaluate each method on each split seed; aggregate; table and chart on the parent run.

    ``profile``: paper (ML-1M, 3 splits, 60 epochs) or quick; ``seeds``/``epochs``/``dataset``
    override it. ``out_dir``: also keep table.csv, table.md and the chart there. ``tuned``:
    method -> tuned profile name (see ``method_profiles``).
    """
    import mlflow

    prof = get_profile(profile)
    ds = dataset or prof.dataset
    seeds = seeds or list(prof.seeds)
    methods = [check_method(m) for m in (methods or default_methods())]
    llm = LLMSettings.model_validate(llm or {})
    cfg = prof.train.with_overrides(epochs=epochs)
    settings = Settings.from_env()
    profiles = method_profiles(methods, ds, profile, tuned, settings)
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    tags = {"profile": profile, "flow": "experiment"}
    with parent_run(settings, ds, f"experiment-{profile}", tags=tags) as parent_id:
        mlflow.log_params({"profile": profile, "dataset": ds, "seeds": ",".join(map(str, seeds)),
                           "methods": ",".join(methods), **{f"train_{k}": v for k, v in cfg.to_dict().items()},
                           **{f"profile_{m}": p.name for m, p in profiles.items()}})
        data = ingest_task(ds)
        mlflow.log_param("dataset_checksum", data["checksum"])
        for seed in seeds:
            split_task(ds, seed, prof.test_fraction, prof.valid_fraction)
            tags = augment_split(ds, seed, llm, parent_id) if any(map(needs_llm, methods)) else None
            for method in methods:
                extra = tags if needs_llm(method) else None
                method_cfg = cfg if profiles[method].name == profile else profiles[method].config_for(seed)
                run_id = train_task(ds, seed, method, method_cfg.to_dict(), profiles[method].name, parent_id,
                                    tags=extra)
                runs[method].append(evaluate_task(ds, seed, method, run_id, cfg.threshold))
        summary = log_summary(runs)
        table = report_task(ds, runs, parent_id, out_dir)
    return {"parent_run_id": parent_id, "dataset": ds, "summary": summary, "table": table}


if __name__ == "__main__":
    print(experiment()["table"])
