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

from flows.common import grid_flow_body
from tasks.augment import LLMSettings
from tasks.report import report_task

TABLE1_METHODS = ("lightgcn", "pngnn", "llm-lightgcn", "llm-pngnn")
BASELINES = ("ease", "ials", "pn-ease")


def default_methods() -> list[str]:
    return [*TABLE1_METHODS, *BASELINES]


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
    method -> tuned profile name (see ``flows.common.method_profiles``).
    """
    out = grid_flow_body("experiment", profile, dataset, seeds, methods or default_methods(), epochs, llm, tuned)
    table = report_task(out["dataset"], out["runs"], out["parent_run_id"], out_dir)
    return {"parent_run_id": out["parent_run_id"], "dataset": out["dataset"], "summary": out["summary"],
            "table": table}


if __name__ == "__main__":
    print(experiment()["table"])
