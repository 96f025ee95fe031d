"""How many pairs an optimiser step takes, and at what learning rate, as the data grows.

Every step of a graph model propagates the whole graph, so an epoch of ``pairs / batch_size`` steps
costs ``pairs / batch_size x graph size``: quadratic in the ratings (a day an epoch at 20M here).
Capping the steps an epoch at ``max_batches`` makes the batch grow with the data instead, and the
epoch linear. A batch ``g`` times larger takes the learning rate times ``sqrt(g)`` (the square-root
rule for Adam: Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient
Algorithms"), reached by a linear warm-up over the first epoch's steps, so the first large steps do
not throw the fresh embeddings off. Below the cap (ML-100K, ML-1M at the paper's batch of 4,096)
the schedule is the configured one, step for step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pngnn.core.config import TrainConfig


@dataclass(frozen=True)
class BatchSchedule:
    batch_size: int
    lr: float
    warmup_steps: int  # 0: the full learning rate from the first step

    @property
    def scaled(self) -> bool:
        return self.warmup_steps > 0

    def lr_at(self, step: int) -> float:
        """The learning rate of optimiser step ``step`` (0-based, counted over the whole training)."""
        if self.warmup_steps and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return self.lr


def batch_schedule(cfg: TrainConfig, n_pairs: int) -> BatchSchedule:
    """The batch and learning rate ``cfg`` trains ``n_pairs`` pairs an epoch with."""
    if cfg.max_batches == 0 or n_pairs <= cfg.max_batches * cfg.batch_size:
        return BatchSchedule(cfg.batch_size, cfg.lr, 0)
    batch = math.ceil(n_pairs / cfg.max_batches)
    return BatchSchedule(batch, cfg.lr * math.sqrt(batch / cfg.batch_size), cfg.max_batches)
