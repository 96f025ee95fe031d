"""The experiment grid's trainings (methods x splits) as mapped tasks on a Dask cluster.

``GridTrainer`` is what ``flows.common.run_grid`` hands each (method, split) to, the split loaded
once by the flow (with its LLM edges for an llm- method). On the threads runner it calls
``train_evaluate_task`` at once, as the flows always did. On Dask it keeps the split;
``metrics()`` then maps
``train_evaluate_task`` over all of them, the split given, so the workers start only after the
flow's process has written everything it writes (splits, LLM answers, edges), get the split as an
input and never open the DuckDB file for it (the registered model's catalog of titles is read
there, read-only), and return the run id and metrics. Promotion of a model's first version to ``production`` happens
in the flow's process, in seed order, as it does sequentially.
"""

from __future__ import annotations

from typing import Any

from prefect import unmapped

from pngnn.core.settings import Settings
from pngnn.data.split import SplitData
from pngnn.tracking.registry import promote_if_none
from tasks.model import train_evaluate_task
from tasks.runners import running_on_dask
from tasks.storage import per_run_key, result_storage


class GridTrainer:
    """Trains each (method, split) it is given, at once (threads) or mapped at the end (Dask)."""

    def __init__(self) -> None:
        self.distributed = running_on_dask()
        self._done: dict[str, list[dict[str, Any]]] = {}
        self._jobs: list[dict[str, Any]] = []

    def add(self, split: SplitData, method: str, config: dict[str, Any], profile: str,
            parent_run_id: str | None = None, tags: dict[str, str] | None = None) -> None:
        """Train ``method`` on ``split`` (loaded once by the flow; with its LLM edges for an llm- method)."""
        dataset, seed = split.dataset, split.seed
        if not self.distributed:
            out = train_evaluate_task(dataset, seed, method, config, profile, parent_run_id, tags=tags, split=split)
            self._done.setdefault(method, []).append(out)
            return
        self._jobs.append({"split": split, "dataset": dataset, "seed": seed, "method": method, "config": config,
                           "profile": profile, "parent_run_id": parent_run_id, "tags": tags})

    def metrics(self) -> dict[str, list[dict[str, float]]]:
        """Each method's test metrics, in the order its splits were added."""
        if self._jobs:
            settings = Settings.from_env()
            mapped = train_evaluate_task.with_options(cache_key_fn=per_run_key, result_storage=result_storage(settings),
                                                      persist_result=True)
            futures = mapped.map(**{k: [job[k] for job in self._jobs] for k in self._jobs[0]},
                                 promote_first=unmapped(False))
            for job, future in zip(self._jobs, futures, strict=True):
                out = future.result()
                promotion = promote_if_none(settings, job["dataset"], job["method"], out["run_id"] or "")
                if promotion is not None:
                    print(promotion.describe())
                self._done.setdefault(job["method"], []).append(out)
            self._jobs.clear()
        return {method: [out["metrics"] for out in outs] for method, outs in self._done.items()}
