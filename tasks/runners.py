"""The flows' task runner, chosen from the settings when a flow run starts.

``PNGNN_TASK_RUNNER=threads`` (the default): Prefect's thread pool in the flow's process, today's
behaviour. ``dask``: ``prefect-dask``'s ``DaskTaskRunner``, on a local cluster of
``PNGNN_DASK_WORKERS`` worker processes, or on the scheduler at ``PNGNN_DASK_ADDRESS`` (which
also selects Dask). Only what the flows submit or map runs there (the LLM chunks, the grid's
trainings); the tasks they call directly (ingest, split, pretrain, merge) stay in the flow's
process, the one writer of the DuckDB file.

Why a runner that decides at ``__enter__`` (``SettingsTaskRunner``): a ``@flow`` decorator is
evaluated at import, and the settings must be read when the run starts (a served deployment
imports once and runs many times; a bad setting must not break ``import flows``). Why a
subclass of ``DaskTaskRunner``: its cluster starts lazily, at the first submit, so an
unreachable scheduler would surface as distributed's traceback mid-run; here it is one line
naming PNGNN_DASK_ADDRESS before any task starts. A local cluster's workers get this
checkout on PYTHONPATH (they unpickle tasks by module), this flow's Prefect API (an ephemeral
server is otherwise started again in each worker), and a share of the cores for torch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from prefect.context import FlowRunContext
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from pngnn.core.preflight import check_dask_scheduler
from pngnn.core.settings import Settings, available_cores

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def worker_env(workers: int) -> dict[str, str]:
    """Environment of a local cluster's worker processes (on top of this process's)."""
    from prefect.client.orchestration import get_client

    paths = [str(PROJECT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    with get_client(sync_client=True) as client:  # the flow's API, the ephemeral server's included
        env["PREFECT_API_URL"] = str(client.api_url).rstrip("/")
    if not os.environ.get("PNGNN_TORCH_THREADS"):
        env["PNGNN_TORCH_THREADS"] = str(max(1, available_cores() // workers))
    return env


class PngnnDaskTaskRunner(DaskTaskRunner):
    """``DaskTaskRunner`` that checks its scheduler (or prepares its local workers) on entry."""

    def __enter__(self) -> PngnnDaskTaskRunner:
        if self.address:
            check_dask_scheduler(self.address)
        elif self._cluster is None:
            workers = int(self.cluster_kwargs.get("n_workers", 1))
            self.cluster_kwargs["env"] = {**worker_env(workers), **self.cluster_kwargs.get("env", {})}
        super().__enter__()
        return self


def task_runner(settings: Settings) -> TaskRunner[Any]:
    """The task runner ``settings`` ask for (see the module's docstring)."""
    if settings.task_runner != "dask" and not settings.dask_address:
        return ThreadPoolTaskRunner()
    if settings.dask_address:
        return PngnnDaskTaskRunner(address=settings.dask_address)
    return PngnnDaskTaskRunner(cluster_kwargs={
        "n_workers": settings.dask_workers, "threads_per_worker": 1, "processes": True,
        "dashboard_address": ":0", "silence_logs": logging.WARNING})


class SettingsTaskRunner(TaskRunner[Any]):
    """The runner of ``task_runner(Settings())``, built when a flow run enters it; every call goes
    to that runner (``inner``)."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self._settings = settings
        self.inner: TaskRunner[Any] | None = None

    def duplicate(self) -> SettingsTaskRunner:
        return type(self)(self._settings)

    def __enter__(self) -> SettingsTaskRunner:
        inner = task_runner(self._settings or Settings.from_env())
        inner.__enter__()
        self.inner = inner
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.inner is not None:
                self.inner.__exit__(*exc)
        finally:
            super().__exit__(*exc)

    def submit(self, task: Any, parameters: dict[str, Any], wait_for: Any = None, dependencies: Any = None) -> Any:
        assert self.inner is not None, "a flow run enters its task runner before submitting"
        return self.inner.submit(task, parameters, wait_for, dependencies)

    def map(self, task: Any, parameters: dict[str, Any], wait_for: Any = None) -> Any:
        assert self.inner is not None, "a flow run enters its task runner before mapping"
        return self.inner.map(task, parameters, wait_for)


def running_on_dask() -> bool:
    """Whether the current flow run submits its tasks to a Dask cluster."""
    ctx = FlowRunContext.get()
    runner = getattr(ctx, "task_runner", None)
    return isinstance(getattr(runner, "inner", runner), DaskTaskRunner)
