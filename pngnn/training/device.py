"""Where the graph models train: ``auto`` (a GPU when torch sees one, else the CPU), ``cpu`` or
``cuda[:N]``.

The device is a property of the machine, not of the experiment: it is not a ``TrainConfig`` field,
so a run's settings (and the results-file check that compares them) are the same on any device.
The command line and the Prefect tasks resolve it once (``--device``, ``PNGNN_DEVICE``) and set it
for the training they start with ``use_device``; ``fit`` moves the model there and every batch,
sampled negative and per-pair feature with it. Evaluation scores users in blocks on that device
and brings back only each block's top-k.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from pngnn.core.errors import UserError

_current: ContextVar[torch.device | None] = ContextVar("pngnn_training_device", default=None)


def resolve_device(name: str) -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N`` as a torch device; a GPU asked for but absent is a
    one-line error before any work starts (never a silent fall-back to the CPU)."""
    key = name.strip().lower()
    if key == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key == "cuda" or key.startswith("cuda:"):
        try:
            device = torch.device(key)
        except RuntimeError:
            raise UserError(f"unknown device '{name}'", "use auto, cpu, cuda or cuda:N") from None
        if not torch.cuda.is_available():
            raise UserError(f"device '{name}' was asked for but torch sees no CUDA GPU "
                            f"(torch {torch.__version__})", "use --device cpu (or PNGNN_DEVICE=cpu), or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device '{name}' does not exist: torch sees {torch.cuda.device_count()} GPU(s)",
                            "use cuda:0 .. cuda:N-1, or auto")
        return device
    raise UserError(f"unknown device '{name}'", "use auto, cpu, cuda or cuda:N")


def training_device() -> torch.device:
    """The device the current training runs on (the CPU unless ``use_device`` set another)."""
    return _current.get() or torch.device("cpu")


@contextmanager
def use_device(device: torch.device | str) -> Iterator[torch.device]:
    """Train on ``device`` inside the block (a name is resolved first)."""
    resolved = resolve_device(device) if isinstance(device, str) else device
    token = _current.set(resolved)
    try:
        yield resolved
    finally:
        _current.reset(token)
