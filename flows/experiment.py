"""The paper's Table 1 as a flow: the pipeline's loop (``flows.common.grid_flow_body``) with the
paper's methods and the baselines, plus the table and chart on the parent run."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import grid_flow_body
from pngnn.core.settings import LLMSettings
from tasks.report import report_task
from tasks.runners import SettingsTaskRunner

TABLE1_METHODS = ("lightgcn", "pngnn", "llm-lightgcn", "llm-pngnn")
# The tuned closed forms and iALS, and the positive/negative linear models (weighted-ease: validation's choice).
BASELINES = ("ease", "edlae", "gf-cf", "ials", "pn-ease", "weighted-ease")


@flow(name="experiment", log_prints=True, task_runner=SettingsTaskRunner())
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
    method -> tuned profile name (see ``pngnn.core.profiles.method_profiles``).
    """
    out = grid_flow_body("experiment", profile, dataset, seeds, methods or [*TABLE1_METHODS, *BASELINES], epochs,
                         llm, tuned)
    table = report_task(out["dataset"], out["runs"], out["parent_run_id"], out_dir)
    return {"parent_run_id": out["parent_run_id"], "dataset": out["dataset"], "summary": out["summary"],
            "table": table}


if __name__ == "__main__":
    print(experiment()["table"])
