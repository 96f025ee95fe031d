"""Training checkpoints: a stopped training continues with the result it would have had.

The tests stop ``fit`` from its epoch callback after epoch k and resume from the last checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pngnn import train as train_module
from pngnn.checkpoints import Checkpointer, run_identity
from pngnn.config import TrainConfig
from pngnn.errors import PngnnError
from pngnn.split import SplitData
from pngnn.train import EpochLog, TrainResult, train_lightgcn, train_pngnn
from tests.test_early_stopping import tiny_split

SMALL = TrainConfig(epochs=5, dim=16, layers=2, batch_size=2048, n_neg=5, l2=1e-3)
TRAINERS = {"lightgcn": train_lightgcn, "pngnn": train_pngnn}


class Stop(Exception):
    """Stands in for a kill: raised from the epoch callback, after the epoch's log, before its checkpoint."""


def stop_after(epoch: int):
    def on_epoch(entry: EpochLog) -> None:
        if entry.epoch == epoch:
            raise Stop

    return on_epoch


def count_epochs(monkeypatch) -> list[int]:
    """Spy on ``train_epoch``: how many epochs a call really trained (restored ones are not trained)."""
    calls: list[int] = []
    original = train_module.train_epoch

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", counting)
    return calls


def interrupted_then_resumed(trainer, split: SplitData, method: str, cfg: TrainConfig, path: Path, every: int,
                             stop: int) -> tuple[TrainResult, Checkpointer]:
    identity = run_identity(split, method, cfg)
    with pytest.raises(Stop):
        trainer(split, cfg, on_epoch=stop_after(stop), progress=False,
                checkpoint=Checkpointer(path, identity, every=every))
    resumed = Checkpointer(path, identity, every=every, resume=True)
    return trainer(split, cfg, progress=False, checkpoint=resumed), resumed


@pytest.mark.parametrize("method", ["lightgcn", "pngnn"])
def test_a_resumed_fit_reproduces_the_uninterrupted_loss_curve(ml100k_split, tmp_path, monkeypatch, method):
    """PN-GNN's default reading also draws a disliked item per pair each epoch: a fourth random stream."""
    trainer = TRAINERS[method]
    whole = trainer(ml100k_split, SMALL, progress=False)
    trained = count_epochs(monkeypatch)
    result, checkpoint = interrupted_then_resumed(trainer, ml100k_split, method, SMALL, tmp_path / "run.ckpt",
                                                  every=2, stop=3)
    assert checkpoint.restored["epoch"] == 2
    assert len(trained) == 3 + 3  # epochs 1-3 before the stop, then only 3-5 again
    assert [e.epoch for e in result.history] == [1, 2, 3, 4, 5]
    assert [e.loss for e in result.history] == pytest.approx([e.loss for e in whole.history], rel=1e-6)
    assert [e.parts for e in result.history] == [pytest.approx(e.parts, rel=1e-6) for e in whole.history]
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(result.model.state_dict()[name], value)


def test_a_resumed_fit_keeps_the_early_stopping_watch(tmp_path, monkeypatch):
    """A scripted validation curve (best at epoch 2, then no gain): the run stopped after epoch 5
    and resumed from epoch 4's checkpoint still stops after epoch 5 and hands back epoch 2's weights."""
    scripted = iter([])

    def scripted_evaluate(scorer, n_items, rated, valid, threshold):  # test double: a scripted validation curve
        return {"recall@20": next(scripted)}

    monkeypatch.setattr(train_module, "evaluate", scripted_evaluate)
    curve = [0.10, 0.30, 0.20, 0.25, 0.05, 0.01, 0.02]
    split = tiny_split()
    cfg = TrainConfig(epochs=len(curve), dim=8, layers=1, batch_size=64, n_neg=2, lr=0.05, eval_every=1, patience=3)
    scripted = iter(curve)
    whole = train_lightgcn(split, cfg, progress=False)
    assert [e.epoch for e in whole.history] == [1, 2, 3, 4, 5] and whole.best_epoch == 2
    scripted = iter(curve[:5] + curve[4:])  # the interrupted run evaluates epochs 1-5, the resumed one 5 again
    result, checkpoint = interrupted_then_resumed(train_lightgcn, split, "lightgcn", cfg, tmp_path / "run.ckpt",
                                                  every=2, stop=5)
    assert checkpoint.restored["early_stopping"]["stale"] == 2
    assert [e.epoch for e in result.history] == [1, 2, 3, 4, 5] and result.best_epoch == 2
    assert [e.loss for e in result.history] == pytest.approx([e.loss for e in whole.history], rel=1e-6)
    torch.testing.assert_close(result.model.embedding.weight, whole.model.embedding.weight)


def test_a_checkpoint_of_another_run_is_refused_or_ignored(ml100k_split, tmp_path):
    path = tmp_path / "run.ckpt"
    with pytest.raises(Stop):
        train_lightgcn(ml100k_split, SMALL, on_epoch=stop_after(2), progress=False,
                       checkpoint=Checkpointer(path, run_identity(ml100k_split, "lightgcn", SMALL), every=1))
    other = SMALL.with_overrides(epochs=6, lr=0.01)
    with pytest.raises(PngnnError, match=r"other settings \(epochs, lr\).*--no-resume"):
        _ = Checkpointer(path, run_identity(ml100k_split, "lightgcn", other), resume=True).restored
    rewrite_commit(path, "abc1234")
    with pytest.raises(PngnnError, match="commit abc1234, not def5678"):
        _ = Checkpointer(path, run_identity(ml100k_split, "lightgcn", SMALL), resume=True, commit="def5678").restored
    assert Checkpointer(path, run_identity(ml100k_split, "lightgcn", other)).restored is None  # default: start over
    assert Checkpointer(path, run_identity(ml100k_split, "lightgcn", SMALL), resume=False).restored is None
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(PngnnError, match=r"cannot be read.*--no-resume"):
        _ = Checkpointer(path, run_identity(ml100k_split, "lightgcn", SMALL)).restored


def rewrite_commit(path: Path, commit: str) -> None:
    """The checkpoint as if written by the code of another commit."""
    torch.save({**torch.load(path, weights_only=True), "commit": commit}, path)
