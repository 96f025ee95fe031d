"""The numerical checks on a real GPU (issue 30 item 4): skipped on a machine without CUDA, run by
benchmarks/gpu_check.sh on one. The custom propagation's gradients, the sampled-scores SDDMM
against the gather form (cuSPARSE with the unsorted, repeated columns of the sampled pattern), and
a short training whose loss curve must follow the CPU's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pngnn.core.config import TrainConfig
from pngnn.models.graph import normalized_adjacency, propagate
from pngnn.models.losses import sampled_scores
from pngnn.training.device import use_device
from pngnn.training.train import train_lightgcn, train_pngnn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
CUDA = torch.device("cuda")


def test_propagation_gradcheck_on_cuda():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 12, 60), rng.integers(0, 9, 60)
    adj = normalized_adjacency(users, items, 12, 9).to(CUDA).to(torch.float64)
    emb = torch.randn(21, 4, dtype=torch.float64, device=CUDA, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: propagate(adj, e, 3), (emb,))


def test_sampled_scores_on_cuda_equal_the_gather_form_with_repeated_unsorted_columns():
    gen = torch.Generator(device="cpu").manual_seed(5)
    u = torch.randn(64, 16, generator=gen, dtype=torch.float64).to(CUDA).requires_grad_()
    items = torch.randn(50, 16, generator=gen, dtype=torch.float64).to(CUDA).requires_grad_()
    neg = torch.randint(0, 50, (64, 40), generator=gen).to(CUDA)  # repeats within rows, unsorted
    weights = torch.randn(64, 40, dtype=torch.float64, device=CUDA)
    fused = sampled_scores(u, items, neg)
    (fused * weights).sum().backward()
    grads = u.grad.clone(), items.grad.clone()
    u.grad = items.grad = None
    gathered = torch.bmm(torch.nn.functional.embedding(neg, items), u.unsqueeze(2)).squeeze(2)
    (gathered * weights).sum().backward()
    torch.testing.assert_close(fused, gathered)
    torch.testing.assert_close(grads[0], u.grad)
    torch.testing.assert_close(grads[1], items.grad)


@pytest.mark.parametrize("train", [train_lightgcn, train_pngnn])
def test_a_short_training_on_cuda_follows_the_cpus_loss_curve(ml100k_split, train):
    cfg = TrainConfig(epochs=3, dim=16, layers=2, batch_size=2048, n_neg=10, l2=1e-3)
    cpu = [e.loss for e in train(ml100k_split, cfg, progress=False).history]
    with use_device(CUDA):
        result = train(ml100k_split, cfg, progress=False)
    gpu = [e.loss for e in result.history]
    assert next(result.model.parameters()).device.type == "cuda"
    np.testing.assert_allclose(gpu, cpu, rtol=2e-3)


@pytest.mark.parametrize("fit", ["ease", "pn-ease"])
def test_closed_forms_on_cuda_give_the_cpus_weights(ml100k_split, fit):
    from pngnn.models.linear import fit_ease, fit_pn_ease

    train = ml100k_split.train
    args = (train, ml100k_split.n_users, ml100k_split.n_items, 500.0)
    make = fit_ease if fit == "ease" else fit_pn_ease
    on_gpu, on_cpu = make(*args, device=CUDA), make(*args)
    torch.testing.assert_close(on_gpu.weights, on_cpu.weights, rtol=1e-3, atol=1e-5)
