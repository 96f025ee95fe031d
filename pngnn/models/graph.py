"""Bipartite user-item graphs, their symmetric normalisation, and fast propagation.

Nodes are users ``0..n_users-1`` followed by items ``n_users..n_users+n_items-1``.
The normalised adjacency is

    A_hat = D^{-1/2} A D^{-1/2},   A = [[0, R], [R^T, 0]]

(isolated nodes get a zero row). LightGCN's propagation is the linear operator

    P(E) = 1/(K+1) * sum_{k=0..K} A_hat^k E.

Because A_hat is symmetric, so is P, and the gradient of a loss L with respect to E is
P(dL/dZ). ``Propagate`` uses that identity: its backward is K more sparse products
with the same CSR matrix instead of torch's generic sparse autograd, which builds the
transposed matrix and is several times slower on CPU.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

# torch says "Sparse CSR tensor support is in beta state ..." (a UserWarning) on the first CSR
# tensor of a process, so every command that trains printed it. CSR is a choice made here, on
# purpose (see ``Propagate``), not something a user can act on: that one warning is filtered,
# once, where the CSR tensors are made; every other torch warning still shows.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state", category=UserWarning)


def csr_tensor(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A CSR tensor. ``check_invariants=False``, given explicitly (torch warns when it is left
    implicit): our indices are valid by construction, and a row may repeat a column, which
    torch's products sum."""
    return torch.sparse_csr_tensor(crow, col, val, size=size, check_invariants=False)


def index_dtype(*sizes: int) -> torch.dtype:
    """int32 CSR indices when every count fits, else int64.

    Why: torch hands CSR products to MKL with 32-bit indices and converts int64 indices on every
    call (a copy of the whole column array per sparse product)."""
    return torch.int32 if max(sizes) < 2**31 - 1 else torch.int64


def normalized_adjacency(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Build D^-1/2 A D^-1/2 of the bipartite graph as a CSR tensor (built once per graph).

    Duplicate (user, item) pairs count once.
    """
    n = n_users + n_items
    keys = np.unique(users.astype(np.int64) * n_items + items.astype(np.int64))
    u = keys // n_items
    i = keys % n_items + n_users
    rows = np.concatenate([u, i])
    cols = np.concatenate([i, u])
    deg = np.bincount(rows, minlength=n).astype(np.float64)
    inv_sqrt = np.zeros(n)
    nz = deg > 0
    inv_sqrt[nz] = deg[nz] ** -0.5
    vals = inv_sqrt[rows] * inv_sqrt[cols]
    order = np.lexsort((cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    crow = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=crow[1:])
    indices = index_dtype(n + 1, len(cols))
    return csr_tensor(
        torch.from_numpy(crow).to(indices),
        torch.from_numpy(cols).to(indices),
        torch.from_numpy(vals).to(dtype),
        size=(n, n),
    )


def block_diagonal(*adjs: torch.Tensor) -> torch.Tensor:
    """Stack CSR matrices on the diagonal so several graphs propagate in one product."""
    n_rows = sum(a.shape[0] for a in adjs)
    nnz = sum(a.values().numel() for a in adjs)
    indices = index_dtype(n_rows + 1, nnz, sum(a.shape[1] for a in adjs))
    crows, cols, vals = [], [], []
    col_off, nnz_off = 0, 0
    for a in adjs:
        crows.append(a.crow_indices()[:-1].to(indices) + nnz_off)
        cols.append(a.col_indices().to(indices) + col_off)
        vals.append(a.values())
        nnz_off += a.values().numel()
        col_off += a.shape[1]
    crow_all = torch.cat([*crows, torch.tensor([nnz_off], dtype=indices)])
    return csr_tensor(crow_all, torch.cat(cols), torch.cat(vals), size=(n_rows, col_off))


def propagate_plain(adj: torch.Tensor, emb: torch.Tensor, n_layers: int) -> torch.Tensor:
    """P(E) = mean of A^k E for k = 0..K, without autograd bookkeeping.

    Horner's form, H <- E + A H repeated K times (H = E first), gives sum_k A^k E with one fused
    sparse product-and-add per layer and no running sum to copy and add; the last layer also
    applies the 1/(K+1)."""
    if n_layers == 0:
        return emb.clone()
    out, scale = emb, 1.0 / (n_layers + 1)
    for layer in range(n_layers):
        last = layer == n_layers - 1
        out = torch.addmm(emb, adj, out, beta=scale if last else 1.0, alpha=scale if last else 1.0)
    return out


class Propagate(torch.autograd.Function):
    """Layer-mean propagation whose backward reuses the forward (A_hat is symmetric)."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, emb: torch.Tensor, n_layers: int) -> torch.Tensor:
        ctx.adj = adj
        ctx.n_layers = n_layers
        return propagate_plain(adj, emb, n_layers)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[None, torch.Tensor, None]:
        return None, propagate_plain(ctx.adj, grad_out.contiguous(), ctx.n_layers), None


def propagate(adj: torch.Tensor, emb: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Differentiable LightGCN propagation of ``emb`` over the symmetric ``adj``."""
    return Propagate.apply(adj, emb, n_layers)


def propagate_autograd(adj: torch.Tensor, emb: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Reference propagation through torch's own sparse autograd (for tests and benchmarks)."""
    adj_coo = adj.to_sparse_coo()
    out = emb
    cur = emb
    for _ in range(n_layers):
        cur = torch.sparse.mm(adj_coo, cur)
        out = out + cur
    return out / (n_layers + 1)
