"""What a task that trains does first: torch pinned to its share of the cores (a flow run must
not take every core while another trains beside it), no MLflow progress bars, and the
library's ``pngnn.*`` log lines forwarded to the run's Prefect logs. Prefect captures only its
own loggers (``PREFECT_LOGGING_EXTRA_LOGGERS`` leaves them at WARNING): without this a training
inside a flow is silent for minutes.
"""

from __future__ import annotations

import logging

from prefect.logging.handlers import APILogHandler

from pngnn.core.runtime import pin_torch_threads, quiet_artifact_transfers
from pngnn.core.settings import Settings

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
