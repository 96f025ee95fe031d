"""Normalised adjacency, block diagonals and the symmetric-propagation autograd function."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pngnn.models.graph import (
    block_diagonal,
    normalized_adjacency,
    propagate,
    propagate_autograd,
    propagate_plain,
)

# 3 users, 4 items; item 3 is rated by nobody (an isolated node).
#   user 0: items 0, 1
#   user 1: item 1 (listed twice: duplicates count once)
#   user 2: items 0, 1, 2
N_USERS, N_ITEMS = 3, 4
USERS = np.array([0, 0, 1, 1, 2, 2, 2])
ITEMS = np.array([0, 1, 1, 1, 0, 1, 2])


def dense_reference(users, items, n_users, n_items) -> np.ndarray:
    """D^-1/2 A D^-1/2 of A = [[0, R], [R^T, 0]], built densely with explicit loops."""
    n = n_users + n_items
    a = np.zeros((n, n))
    for u, i in zip(users, items, strict=True):
        a[u, n_users + i] = 1.0
        a[n_users + i, u] = 1.0
    deg = a.sum(1)
    out = np.zeros((n, n))
    for r in range(n):
        for c in range(n):
            if a[r, c]:
                out[r, c] = a[r, c] / np.sqrt(deg[r] * deg[c])
    return out


def test_normalized_adjacency_matches_dense_formula():
    adj = normalized_adjacency(USERS, ITEMS, N_USERS, N_ITEMS, dtype=torch.float64)
    assert adj.layout == torch.sparse_csr
    assert adj.shape == (7, 7)
    dense = adj.to_dense().numpy()
    np.testing.assert_allclose(dense, dense_reference(USERS, ITEMS, N_USERS, N_ITEMS))
    # spot check by hand: degrees user0=2, user2=3, item0 (node 3)=2, item1 (node 4)=3
    #   A_hat[user0, item0] = 1/sqrt(2*2) = 0.5; A_hat[user2, item1] = 1/sqrt(3*3) = 1/3
    assert dense[0, 3] == pytest.approx(0.5)
    assert dense[2, 4] == pytest.approx(1 / 3)
    # user 1 (degree 1) - item 1 (degree 3): 1/sqrt(3)
    assert dense[1, 4] == pytest.approx(3**-0.5)


def test_normalized_adjacency_symmetric_and_isolated_row_zero():
    dense = normalized_adjacency(USERS, ITEMS, N_USERS, N_ITEMS).to_dense()
    assert torch.equal(dense, dense.T)
    isolated = N_USERS + 3  # item 3
    assert torch.count_nonzero(dense[isolated]) == 0
    assert torch.count_nonzero(dense[:, isolated]) == 0
    # the user-user and item-item blocks are empty (bipartite)
    assert torch.count_nonzero(dense[:N_USERS, :N_USERS]) == 0
    assert torch.count_nonzero(dense[N_USERS:, N_USERS:]) == 0
    # 6 distinct edges, each stored twice
    assert normalized_adjacency(USERS, ITEMS, N_USERS, N_ITEMS).values().numel() == 12


def test_isolated_user_row_zero():
    # user 1 rates nothing
    adj = normalized_adjacency(np.array([0, 2]), np.array([0, 0]), 3, 1).to_dense()
    assert torch.count_nonzero(adj[1]) == 0
    # item 0 has degree 2, users 0 and 2 degree 1 -> 1/sqrt(2)
    assert adj[0, 3].item() == pytest.approx(2**-0.5)


def test_propagate_plain_is_the_layer_mean():
    adj = normalized_adjacency(USERS, ITEMS, N_USERS, N_ITEMS, dtype=torch.float64)
    a = adj.to_dense()
    emb = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # K = 3: (E + A E + A^2 E + A^3 E) / 4
    expected = (emb + a @ emb + a @ a @ emb + a @ a @ a @ emb) / 4
    torch.testing.assert_close(propagate_plain(adj, emb, 3), expected)
    torch.testing.assert_close(propagate_plain(adj, emb, 0), emb)


def random_graph(seed: int, n_users: int = 9, n_items: int = 11, n_edges: int = 30, dtype=torch.float32):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_edges)
    items = rng.integers(0, n_items, n_edges)
    return normalized_adjacency(users, items, n_users, n_items, dtype=dtype)


def test_custom_backward_matches_torch_autograd():
    adj = random_graph(0)
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(20, 8, generator=gen)
    weights = torch.randn(20, 8, generator=gen)  # an arbitrary linear read-out
    e1 = emb.clone().requires_grad_(True)
    e2 = emb.clone().requires_grad_(True)
    out1 = propagate(adj, e1, 3)
    out2 = propagate_autograd(adj, e2, 3)
    assert torch.allclose(out1, out2, atol=1e-6)
    ((out1 * weights).sum() + out1.pow(2).sum()).backward()
    ((out2 * weights).sum() + out2.pow(2).sum()).backward()
    assert e1.grad is not None and e2.grad is not None
    assert torch.allclose(e1.grad, e2.grad, atol=1e-5)
    assert e1.grad.abs().sum() > 0


def test_gradcheck_float64():
    adj = random_graph(2, n_users=4, n_items=5, n_edges=9, dtype=torch.float64)
    emb = torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3), requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: propagate(adj, e, 2), (emb,), eps=1e-6, atol=1e-5)


def test_block_diagonal_matches_torch_block_diag():
    a = random_graph(4, n_users=3, n_items=4, n_edges=6)
    b = random_graph(5, n_users=5, n_items=2, n_edges=7)
    c = normalized_adjacency(np.array([0]), np.array([0]), 1, 1)
    out = block_diagonal(a, b, c)
    assert out.layout == torch.sparse_csr
    assert out.shape == (7 + 7 + 2, 7 + 7 + 2)
    expected = torch.block_diag(a.to_dense(), b.to_dense(), c.to_dense())
    assert torch.equal(out.to_dense(), expected)
    # propagating the stacked graph equals propagating each graph alone
    emb = torch.randn(16, 4, generator=torch.Generator().manual_seed(6))
    stacked = propagate_plain(out, emb, 2)
    torch.testing.assert_close(stacked[:7], propagate_plain(a, emb[:7], 2))
    torch.testing.assert_close(stacked[7:14], propagate_plain(b, emb[7:14], 2))
    torch.testing.assert_close(stacked[14:], propagate_plain(c, emb[14:], 2))
