"""The process a training runs in: torch threads pinned, no MLflow progress bars.

torch starts one thread per core in every process. A worker that runs a flow run beside another
training (``PNGNN_SERVE_LIMIT`` > 1, or any job on the same machine) then has twice as many
busy threads as cores, and OpenMP threads spin waiting for each other: a 5-epoch run measured
25 s with 2 threads against 2 s with one on a busy 2-core machine. Every training task pins
torch to ``Settings.torch_thread_count()`` when it starts (``tasks/runtime.py``), and the served
worker (``flows/serve.py``) does it too and exports the count to the flow-run processes it
starts, with MLflow's artifact progress bars off: on a worker they are terminal noise between
the log lines, one bar per model download or upload.

No Prefect here: the library stays free of orchestration (``tests/test_layering.py``).
"""

from __future__ import annotations

import os

from pngnn.core.settings import Settings

# Read by MLflow at each artifact transfer, so setting it before the first one is enough.
NO_PROGRESS_BARS = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def pin_torch_threads(settings: Settings) -> int:
    """``torch.set_num_threads(settings.torch_thread_count())``; returns the count."""
    import torch

    threads = settings.torch_thread_count()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def torch_threads() -> int:
    """The threads torch computes with in this process now (recorded with every tracked run)."""
    import torch

    return torch.get_num_threads()


def quiet_artifact_transfers() -> None:
    """MLflow's artifact progress bars off in this process, unless the variable says otherwise."""
    for key, value in NO_PROGRESS_BARS.items():
        os.environ.setdefault(key, value)


def worker_environment(settings: Settings) -> dict[str, str]:
    """What the served worker hands to the flow-run processes it starts: the thread count it
    resolved (so every flow run pins the same) and no progress bars."""
    return {**NO_PROGRESS_BARS, "PNGNN_TORCH_THREADS": str(settings.torch_thread_count())}


def prepare_worker(settings: Settings) -> int:
    """Make this process the served worker: export ``worker_environment`` (a variable already
    set wins) and pin its own torch threads; returns the count."""
    for key, value in worker_environment(settings).items():
        os.environ.setdefault(key, value)
    return pin_torch_threads(settings)
