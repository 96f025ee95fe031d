"""The device path: on a CPU-only machine, checks that nothing silently stays on the CPU when the
model lives elsewhere. PyTorch's ``meta`` device stands in for the GPU: a tensor built or left on
the CPU meets a meta tensor in some op and torch refuses the mix, so every check below would fail
on the bugs it guards against (a constant built without ``device=``, a batch not moved, an index
left behind)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pngnn.core.config import TrainConfig
from pngnn.core.errors import PngnnError, UserError
from pngnn.core.settings import Settings
from pngnn.data.split import Interactions, SplitData
from pngnn.evaluation.evaluate import csr_rows, unseen_scores
from pngnn.training.device import resolve_device, training_device, use_device
from pngnn.training.train import build_lightgcn, build_pngnn, fit, pngnn_pair_plan

META = torch.device("meta")


@pytest.fixture(autouse=True, scope="module")
def meta_bincount():
    """Test double: meta has no ``bincount`` kernel (its size depends on the data); this one returns
    ``minlength`` counts, the size every call of ours asks for (minlength >= largest index + 1)."""
    lib = torch.library.Library("aten", "IMPL")

    def bincount(x: torch.Tensor, weights: torch.Tensor | None = None, minlength: int = 0) -> torch.Tensor:
        return torch.empty(minlength, dtype=torch.int64 if weights is None else weights.dtype, device=META)

    lib.impl("bincount", bincount, "Meta")
    yield
    del lib  # dropping the library removes the kernel again


def small_split(n_items: int = 9) -> SplitData:
    rng = np.random.default_rng(3)
    pairs = np.unique(np.stack([rng.integers(0, 12, 120), rng.integers(0, n_items, 120)], 1), axis=0)
    ratings = rng.choice(np.array([1.0, 2.0, 4.0, 5.0], np.float32), len(pairs))
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    return SplitData("tiny", 1, 12, n_items, Interactions(pairs[:, 0], pairs[:, 1], ratings), empty, empty)


def on_meta_with_dense_graph(model: torch.nn.Module) -> torch.nn.Module:
    """Test double of a GPU model: the CSR graph made dense (torch has no sparse kernels on meta),
    everything moved to the meta device."""
    model.adj = model.adj.to_dense()
    return model.to(META)


def meta_batch(split: SplitData, n_neg: int = 10) -> dict[str, torch.Tensor]:
    """Eight pairs with more negatives each than the 9 items, so the sampled scores take their
    gather form (meta has no SDDMM kernel either)."""
    users = torch.from_numpy(split.train.users[:8]).to(META)
    pos = torch.from_numpy(split.train.items[:8]).to(META)
    neg = torch.zeros(8, n_neg, dtype=torch.int64, device=META)
    return {"users": users, "pos": pos, "neg": neg}


def test_the_graph_is_a_buffer_that_moves_with_the_model_and_stays_out_of_state_dict():
    split = small_split()
    for model in (build_lightgcn(split, TrainConfig(dim=4)), build_pngnn(split, TrainConfig(dim=4))):
        assert "adj" in dict(model.named_buffers())
        assert "adj" not in model.state_dict()  # checkpoints and early-stopping states hold weights only
        model.to(torch.float64)
        assert model.adj.dtype == torch.float64  # .to() reached the graph, so .to("cuda") does too


@pytest.mark.parametrize("variant,attention", [("weighted", True), ("weighted", False), ("siren", False)])
def test_pngnn_loss_and_scores_stay_on_the_models_device(variant, attention):
    split = small_split()
    model = on_meta_with_dense_graph(build_pngnn(split, TrainConfig(dim=4, layers=2, dual_bpr=variant,
                                                                    attention=attention)))
    batch = meta_batch(split)
    extra = ({"disliked": torch.full((8,), -1, dtype=torch.int64, device=META)} if variant == "weighted"
             else {"positive": torch.ones(8, dtype=torch.bool, device=META)})
    loss, parts = model.calculate_loss(batch["users"], batch["pos"], batch["neg"], **extra)
    assert loss.device == META and all(p.device == META for p in parts.values())


def test_lightgcn_loss_and_masked_scores_stay_on_the_models_device():
    split = small_split()
    model = on_meta_with_dense_graph(build_lightgcn(split, TrainConfig(dim=4, layers=2)))
    batch = meta_batch(split)
    loss, _ = model.calculate_loss(batch["users"], batch["pos"], batch["neg"])
    assert loss.device == META
    ptr, cols = csr_rows(split.train.users, split.train.items, split.n_users)
    # Users come from NumPy (CPU); the scorer and the seen-item mask must move them, not the scores.
    scores = unseen_scores(model.scorer(), np.arange(5), ptr, cols)
    assert scores.device == META and scores.shape == (5, split.n_items)


def test_fit_moves_the_model_and_every_batch_tensor_to_the_training_device():
    split = small_split(n_items=40)
    cfg = TrainConfig(dim=4, layers=1, epochs=2, batch_size=16, n_neg=3)
    model = build_pngnn(split, cfg)
    model.adj = model.adj.to_dense()  # as in on_meta_with_dense_graph: meta has no sparse kernels
    plan = pngnn_pair_plan(split.train, split.n_users, cfg)
    devices: list[torch.device] = []

    def recording_loss(users, pos, neg, **features):  # test double: records devices, returns a CPU zero loss
        devices.extend(t.device for t in (users, pos, neg, *features.values()))
        return torch.zeros((), requires_grad=True), {}

    model.calculate_loss = recording_loss
    with use_device(META):
        assert training_device() == META
        fit(model, plan.pairs, split.train, split.n_users, split.n_items, cfg, progress=False,
            epoch_features=plan.epoch_features, generators=plan.generators)
    assert training_device() == torch.device("cpu")  # the block's device does not leak out
    assert next(model.parameters()).device == META and model.adj.device == META
    assert len(devices) >= 4 * 2 * 2  # users, pos, neg, disliked for each batch of both epochs
    assert set(devices) == {META}


def test_device_names(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="unknown device 'tpu'; use auto, cpu"):
        resolve_device("tpu")
    monkeypatch.setenv("PNGNN_DEVICE", "gpu")
    with pytest.raises(PngnnError, match="PNGNN_DEVICE='gpu'"):
        Settings()
    assert Settings(device="cuda:1").device == "cuda:1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_one_line_error_naming_the_fix():
    with pytest.raises(UserError) as err:
        resolve_device("cuda")
    assert "torch sees no CUDA GPU" in str(err.value) and "--device cpu" in str(err.value)
    assert "\n" not in str(err.value)
