"""Each epoch's draws made while the previous epoch trains (``pngnn.training.draw_ahead``): the
same draws as in line, the streams' state a checkpoint saves as an in-line run has it, and the
same trained model."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from pngnn.core.config import TrainConfig
from pngnn.training.draw_ahead import DrawAhead, EpochDraw
from pngnn.training.train import train_lightgcn, train_pngnn


def drawer(streams: dict[str, np.random.Generator], threads: set[str] | None = None):
    def draw() -> EpochDraw:
        if threads is not None:
            threads.add(threading.current_thread().name)
        order = streams["order"].permutation(50)
        return EpochDraw(order, streams["negatives"].integers(0, 99, size=(50, 3)),
                         {"extra": streams["extra"].random(50)})
    return draw


def fresh_streams() -> dict[str, np.random.Generator]:
    return {name: np.random.default_rng(seed) for seed, name in enumerate(("order", "negatives", "extra"))}


@pytest.mark.parametrize("ahead", [True, False])
def test_draws_and_saved_states_match_drawing_in_line(ahead):
    reference = fresh_streams()
    in_line = drawer(reference)
    expected, states_between = [], []
    for _ in range(4):
        expected.append(in_line())
        states_between.append({n: g.bit_generator.state for n, g in reference.items()})

    streams, threads = fresh_streams(), set()
    with DrawAhead(drawer(streams, threads), streams, ahead=ahead) as draws:
        for epoch in range(4):
            got = draws.take()
            if epoch < 3:
                draws.start_next()
            np.testing.assert_array_equal(got.order, expected[epoch].order)
            np.testing.assert_array_equal(got.negatives, expected[epoch].negatives)
            np.testing.assert_array_equal(got.features["extra"], expected[epoch].features["extra"])
            # what a checkpoint after this epoch saves: the streams as the in-line run left them
            assert draws.stream_states() == states_between[epoch]
    drawn_in = {name.startswith("epoch-draw") for name in threads}
    assert drawn_in == ({True, False} if ahead else {False})  # the first epoch in line, then ahead


def test_a_failed_draw_ahead_raises_when_its_epoch_is_taken():
    def draw() -> EpochDraw:
        raise ValueError("no negatives left")

    with DrawAhead(draw, {}, ahead=True) as draws:
        draws.start_next()
        with pytest.raises(ValueError, match="no negatives left"):
            draws.take()


@pytest.mark.parametrize("trainer", [train_lightgcn, train_pngnn])
def test_training_with_draws_ahead_is_training_in_line(ml100k_split, trainer):
    cfg = TrainConfig(epochs=3, dim=16, layers=2, batch_size=4096, n_neg=5, l2=1e-3)
    ahead = trainer(ml100k_split, cfg, progress=False, draw_ahead=True)
    in_line = trainer(ml100k_split, cfg, progress=False, draw_ahead=False)
    assert [e.loss for e in ahead.history] == [e.loss for e in in_line.history]
    for name, value in in_line.model.state_dict().items():
        torch.testing.assert_close(ahead.model.state_dict()[name], value, rtol=0, atol=0)
