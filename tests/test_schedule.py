"""The batch schedule (issue 30 item 1): at most ``max_batches`` optimiser steps an epoch, so an epoch
costs a fixed number of graph propagations whatever the data size; nothing changes below the cap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pngnn.core.config import PROFILES, TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.training import train as train_module
from pngnn.training.schedule import batch_schedule
from tests.test_early_stopping import tiny_split


def test_below_the_cap_the_paper_batch_and_learning_rate_are_kept():
    paper = PROFILES["paper"].train
    # ML-1M split 1: 800,167 train ratings, 460,300 of them liked. PN-GNN's readings train on the
    # liked pairs or on all ratings: 113 or 196 steps of 4,096, both under the cap of 256
    for ml1m_pairs in (460_300, 800_167):
        schedule = batch_schedule(paper, ml1m_pairs)
        assert (schedule.batch_size, schedule.lr, schedule.warmup_steps) == (4096, paper.lr, 0)
    assert batch_schedule(paper.with_overrides(max_batches=0), 50_000_000).batch_size == 4096  # 0: no cap


def test_the_default_caps_ml1m_at_32_steps_and_the_paper_profile_does_not():
    """The default (32) was measured on ML-1M's three splits against the paper profile, whose own 256
    keeps it the paper's 4,096 batch there; ML-100K's quick profile stays under 32 as well."""
    assert TrainConfig().max_batches == 32 and PROFILES["paper"].train.max_batches == 256
    capped = batch_schedule(TrainConfig(), 460_300)  # ML-1M split 1's liked pairs
    assert (capped.batch_size, -(-460_300 // capped.batch_size)) == (14_385, 32)
    quick = PROFILES["quick"].train
    for ml100k_liked_pairs in (44_000, 46_000):  # ML-100K split 1's liked pairs, with the LLM's likes
        assert batch_schedule(quick, ml100k_liked_pairs).batch_size == quick.batch_size


def test_above_the_cap_the_batch_grows_the_rate_by_its_square_root_after_a_warm_up():
    cfg = TrainConfig(batch_size=4096, lr=5e-3, max_batches=256)
    pairs = 11_500_000  # about 20M ratings
    schedule = batch_schedule(cfg, pairs)
    assert schedule.batch_size == math.ceil(pairs / 256) and -(-pairs // schedule.batch_size) == 256
    assert schedule.lr == pytest.approx(5e-3 * math.sqrt(schedule.batch_size / 4096))
    assert schedule.lr_at(0) == pytest.approx(schedule.lr / 256) and schedule.lr_at(127) == pytest.approx(
        schedule.lr / 2)
    assert schedule.lr_at(255) == schedule.lr_at(10_000) == schedule.lr


def test_max_batches_must_not_be_negative():
    with pytest.raises(PngnnError, match="max_batches=-1 must be 0"):
        TrainConfig(max_batches=-1)


def test_a_capped_epoch_takes_max_batches_steps_at_the_warmed_up_rates(monkeypatch):
    """Counted inside fit: the optimiser steps of each epoch and the learning rate of each step."""
    split = tiny_split()
    cfg = TrainConfig(epochs=2, dim=8, layers=1, batch_size=4, max_batches=3, n_neg=2, l2=1e-3)
    seen: list[float] = []
    real_step = train_module.torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(train_module.torch.optim.Adam, "step", counting_step)
    train_module.train_lightgcn(split, cfg, progress=False)
    n_pairs = int((split.train.ratings > cfg.threshold).sum())
    schedule = batch_schedule(cfg, n_pairs)
    assert n_pairs > 12 and len(seen) == 2 * 3  # 3 steps an epoch, not n_pairs / 4
    np.testing.assert_allclose(seen, [schedule.lr_at(s) for s in range(6)])
    assert seen[0] < seen[2] == seen[5] == pytest.approx(cfg.lr * math.sqrt(schedule.batch_size / 4))
