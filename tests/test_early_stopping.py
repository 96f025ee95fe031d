"""Early stopping: training stops after ``patience`` evaluations without gain and the model
handed back is the one of the best validation epoch, not the last one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pngnn.core.config import TrainConfig
from pngnn.data.split import Interactions, SplitData
from pngnn.training import train as train_module
from pngnn.training.train import train_lightgcn

# validation recall@20 the scripted evaluation reports at epochs 1, 2, 3, ...: best at 2
SCRIPTED = [0.10, 0.30, 0.20, 0.25, 0.05, 0.01]


def tiny_split() -> SplitData:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 400), rng.integers(0, 20, 400)
    pairs = np.unique(np.stack([users, items], 1), axis=0)
    ratings = np.full(len(pairs), 5.0, np.float32)
    train = Interactions(pairs[:-40, 0], pairs[:-40, 1], ratings[:-40])
    valid = Interactions(pairs[-40:, 0], pairs[-40:, 1], ratings[-40:])
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    return SplitData("tiny", 1, 30, 20, train=train, valid=valid, test=empty)


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_early_stopping_restores_the_best_validation_state(monkeypatch, patience):
    calls = []

    def scripted_evaluate(scorer, n_items, rated, valid, threshold):  # test double: a scripted validation curve
        calls.append(len(valid))
        return {"recall@20": SCRIPTED[len(calls) - 1]}

    monkeypatch.setattr(train_module, "evaluate", scripted_evaluate)
    states: dict[int, torch.Tensor] = {}
    cfg = TrainConfig(epochs=len(SCRIPTED), dim=8, layers=1, batch_size=64, n_neg=2, lr=0.05, eval_every=1,
                      patience=patience, valid_metric="recall@20")

    def on_epoch(entry):
        states[entry.epoch] = model_ref[0].embedding.weight.detach().clone()

    model_ref = []
    original_fit = train_module.fit

    def fit_capturing_model(model, *args, **kwargs):
        model_ref.append(model)
        return original_fit(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "fit", fit_capturing_model)
    result = train_lightgcn(tiny_split(), cfg, on_epoch=on_epoch, progress=False)
    # best at epoch 2; each later epoch below 0.30 is one stale evaluation
    stop = 2 + patience
    assert [e.epoch for e in result.history] == list(range(1, stop + 1))
    assert calls == [40] * stop  # the validation part, every epoch
    assert result.best_epoch == 2
    final = result.model.embedding.weight.detach()
    assert torch.equal(final, states[2])
    assert not torch.equal(final, states[stop])  # training went on after the best epoch: restoring mattered
