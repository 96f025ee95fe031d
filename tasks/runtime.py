"""What a task that trains does first: its settings, and its process ready for training in a flow.

- torch pinned to ``Settings.torch_thread_count()`` threads (``pngnn.runtime``): a flow run
  must not take every core while another one trains beside it;
- the library's log lines (``pngnn.*``: one per epoch from ``pngnn.train``, warnings of the
  steps) go to the run's Prefect logs, where the UI and ``prefect flow-run logs`` show them,
  attached to the task run that wrote them. Prefect captures only its own loggers (and those in
  ``PREFECT_LOGGING_EXTRA_LOGGERS``, which it leaves at the root's WARNING level, so INFO lines
  would still be dropped): without this, a training inside a flow is silent for minutes.
  Progress bars stay off in tasks (``progress=False``): they are not log lines;
- no MLflow artifact progress bars (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``).
"""

from __future__ import annotations

import logging

from prefect.logging.handlers import APILogHandler

from pngnn.runtime import pin_torch_threads, quiet_artifact_transfers
from pngnn.settings import Settings

LIBRARY_LOGGER = "pngnn"


class RunLogHandler(APILogHandler):
    """Prefect's API log handler, silent outside a flow or task run: the library also logs from
    plain commands (``pngnn train``), where there is no run to attach a line to."""

    def emit(self, record: logging.LogRecord) -> None:
        from prefect.context import FlowRunContext, TaskRunContext

        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


def forward_library_logs(level: int = logging.INFO) -> None:
    """The ``pngnn`` loggers' records of ``level`` and above into the current run's Prefect logs
    (once per process; an API handler already there, e.g. from ``PREFECT_LOGGING_EXTRA_LOGGERS``,
    is kept instead of adding a second). A lower level someone set is kept."""
    logger = logging.getLogger(LIBRARY_LOGGER)
    if not any(isinstance(handler, APILogHandler) for handler in logger.handlers):
        logger.addHandler(RunLogHandler())
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)


def task_settings() -> Settings:
    """``Settings.from_env()``, with this process pinned, quiet and its library logs forwarded."""
    settings = Settings.from_env()
    pin_torch_threads(settings)
    quiet_artifact_transfers()
    forward_library_logs()
    return settings
