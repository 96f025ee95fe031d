"""The methods of the results table, behind one call: ``train_method(name, split, cfg)``.

New methods (PN-GNN, the LLM-augmented variants) register here, so the CLI, the Prefect
tasks and the experiment flow never need to know how a method is built.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pngnn.config import TrainConfig
from pngnn.errors import PngnnError
from pngnn.split import SplitData
from pngnn.train import EpochCallback, TrainResult, build_most_popular, train_lightgcn, train_pngnn


def _most_popular(split: SplitData, cfg: TrainConfig, on_epoch: EpochCallback | None, progress: bool) -> TrainResult:
    return TrainResult(build_most_popular(split, cfg), [], 0, 0.0)


def _lightgcn(split: SplitData, cfg: TrainConfig, on_epoch: EpochCallback | None, progress: bool) -> TrainResult:
    return train_lightgcn(split, cfg, on_epoch=on_epoch, progress=progress)


def _pngnn(split: SplitData, cfg: TrainConfig, on_epoch: EpochCallback | None, progress: bool) -> TrainResult:
    return train_pngnn(split, cfg, on_epoch=on_epoch, progress=progress)


METHODS: dict[str, Callable[[SplitData, TrainConfig, EpochCallback | None, bool], TrainResult]] = {
    "mostpop": _most_popular,
    "lightgcn": _lightgcn,
    "pngnn": _pngnn,
}


def check_method(name: str) -> str:
    if name not in METHODS:
        raise PngnnError(f"unknown method '{name}'; choose one of {sorted(METHODS)}")
    return name


def train_method(
    name: str, split: SplitData, cfg: TrainConfig, on_epoch: EpochCallback | None = None, progress: bool = True
) -> TrainResult:
    return METHODS[check_method(name)](split, cfg, on_epoch, progress)


def seen_items(split: SplitData):
    """Everything the model may have seen (train and validation) is masked at test time."""
    from pngnn.split import Interactions

    return Interactions(
        np.concatenate([split.train.users, split.valid.users]),
        np.concatenate([split.train.items, split.valid.items]),
        np.concatenate([split.train.ratings, split.valid.ratings]),
    )
