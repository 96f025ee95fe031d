"""PN-GNN: positive/negative graphs, LightGCN on each, attention fusion per node.

Train ratings split at a threshold (3.5) into a positive graph G_p (r > 3.5) and a
negative graph G_n (the rest). Each graph has its own layer-0 embeddings E_p, E_n and
its own normalised adjacency A_p, A_n; LightGCN propagation gives

    Z_p = 1/(K+1) sum_k A_p^k E_p,     Z_n = 1/(K+1) sum_k A_n^k E_n.

Both run as *one* sparse product chain over the block-diagonal matrix diag(A_p, A_n)
applied to the stacked table [E_p; E_n] (one call per layer instead of two; the custom
symmetric backward of ``pngnn.models.graph.propagate`` applies unchanged). Per node v, an
attention module scores each branch

    w_p(v) = q^T tanh(W z_p(v) + c),   w_n(v) = q^T tanh(W z_n(v) + c),
    (alpha_p, alpha_n) = softmax(w_p, w_n)

and the fused embedding used for ranking is Z = alpha_p * Z_p + alpha_n * Z_n; the score
is y_ui = z_u . z_i. Without attention (ablation) alpha_p = alpha_n = 1/2. Training uses
Dual-BPR with L2 on the batch's layer-0 rows of both tables. Six readings of the paper's
equation live in ``pngnn.models.losses``; the default, ``weighted`` with b = 4, ranks a liked item
and (at weight 1/b) a disliked item of the same user above unrated ones, both with the
fused embedding (why this reading is the default: README's ablation, "PN-GNN").
"""

from __future__ import annotations

import torch
from torch import nn

from pngnn.core.config import DISLIKED_PAIR_VARIANTS
from pngnn.models.base import GraphRecommender
from pngnn.models.graph import block_diagonal, propagate
from pngnn.models.losses import (
    branch_bpr_loss,
    dual_bpr_loss,
    graded_bpr_loss,
    l2_penalty,
    pair_scores,
    weighted_bpr_loss,
)


class BranchAttention(nn.Module):
    """Softmax attention over the two branches, per node: returns alpha [N, 2]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=True)  # W, c
        self.query = nn.Linear(dim, 1, bias=False)  # q
        nn.init.xavier_normal_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        # q = 0: every node starts at alpha = (1/2, 1/2), the no-attention average, and moves
        # away only as far as the loss asks; a random q saturates the softmax per node at init.
        nn.init.zeros_(self.query.weight)

    def forward(self, z_pos: torch.Tensor, z_neg: torch.Tensor) -> torch.Tensor:
        w = torch.cat([self.query(torch.tanh(self.proj(z_pos))), self.query(torch.tanh(self.proj(z_neg)))], dim=1)
        return torch.softmax(w, dim=1)


class PNGNN(GraphRecommender):
    adj: torch.Tensor  # diag(A_p, A_n), a non-persistent buffer: moves with .to(device), stays out of state_dict

    def __init__(self, adj_pos: torch.Tensor, adj_neg: torch.Tensor, n_users: int, n_items: int, dim: int = 64,
                 layers: int = 4, l2: float = 0.0, b: float = 4.0, variant: str = "weighted",
                 attention: bool = True) -> None:
        super().__init__()
        self.n_users, self.n_items, self.layers, self.l2 = n_users, n_items, layers, l2
        self.b, self.variant = b, variant
        self.n_nodes = n_users + n_items
        self.register_buffer("adj", block_diagonal(adj_pos, adj_neg), persistent=False)
        self.embedding = nn.Embedding(2 * self.n_nodes, dim)  # [E_p; E_n]
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.attention = BranchAttention(dim) if attention else None

    def branches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Z_p, Z_n), each [n_users + n_items, dim]."""
        z = propagate(self.adj, self.embedding.weight, self.layers)
        z_pos, z_neg = torch.split(z, self.n_nodes)  # split's backward is one cat; slicing's, zeros + copy each
        return z_pos, z_neg

    def alphas(self, z_pos: torch.Tensor, z_neg: torch.Tensor) -> torch.Tensor:
        if self.attention is None:
            return torch.full((z_pos.shape[0], 2), 0.5, dtype=z_pos.dtype, device=z_pos.device)
        return self.attention(z_pos, z_neg)

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        z_pos, z_neg = self.branches()
        alpha = self.alphas(z_pos, z_neg)
        return alpha[:, :1] * z_pos + alpha[:, 1:] * z_neg, alpha

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        z, _ = self.fused()
        users, items = torch.split(z, [self.n_users, self.n_items])
        return users, items

    @torch.no_grad()
    def attention_summary(self) -> dict[str, float]:
        """Mean and spread of alpha_p for users and items (logged to MLflow)."""
        _, alpha = self.fused()
        a_p = alpha[:, 0]
        users, items = a_p[: self.n_users], a_p[self.n_users :]
        return {"alpha_p_users_mean": float(users.mean()), "alpha_p_users_std": float(users.std()),
                "alpha_p_items_mean": float(items.mean()), "alpha_p_items_std": float(items.std())}

    def calculate_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                       positive: torch.Tensor | None = None, disliked: torch.Tensor | None = None,
                       **batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Dual-BPR + L2. ``positive`` [B] flags positive-graph pairs (the readings that
        train on every rated pair); ``disliked`` [B] is a disliked item of each pair's user
        or -1 (the "graded" and "weighted" readings, whose pairs are all positive)."""
        if self.variant == "branch":
            loss = self._branch_loss(users, pos, neg, positive)
            reg = l2_penalty(self.embedding.weight, users, self.n_users + pos, self.n_users + neg, tables=2)
            return loss + self.l2 * reg, {"dual_bpr": loss.detach(), "l2": reg.detach()}
        user_emb, item_emb = self.embeddings()
        u, pos_scores, neg_scores = pair_scores(user_emb, item_emb, users, pos, neg)
        reg_items = neg
        if self.variant in DISLIKED_PAIR_VARIANTS:
            if disliked is None:
                raise ValueError(f"the {self.variant} Dual-BPR reading needs a 'disliked' item per pair (-1: none)")
            has = disliked >= 0
            k = disliked.clamp(min=0)
            disliked_scores = (u * item_emb.index_select(0, k)).sum(-1)
            pick = graded_bpr_loss if self.variant == "graded" else weighted_bpr_loss
            loss = pick(pos_scores, neg_scores, disliked_scores, has, self.b)
            # k rows join the penalty; users without one repeat their liked item instead.
            reg_items = torch.cat([neg, torch.where(has, k, pos).unsqueeze(1)], dim=1)
        else:
            if positive is None:
                positive = torch.ones_like(pos, dtype=torch.bool)
            loss = dual_bpr_loss(pos_scores, neg_scores, positive, self.b, self.variant)
        reg = l2_penalty(self.embedding.weight, users, self.n_users + pos, self.n_users + reg_items, tables=2)
        return loss + self.l2 * reg, {"dual_bpr": loss.detach(), "l2": reg.detach()}

    def _branch_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                     positive: torch.Tensor | None) -> torch.Tensor:
        """The ``branch`` reading: every pair scored on both branches, each term keeping its own."""
        if positive is None:
            positive = torch.ones_like(pos, dtype=torch.bool)
        z_pos, z_neg = self.branches()
        sizes = [self.n_users, self.n_items]
        user_p, item_p = torch.split(z_pos, sizes)
        user_n, item_n = torch.split(z_neg, sizes)
        _, pos_p, neg_p = pair_scores(user_p, item_p, users, pos, neg)
        _, pos_n, neg_n = pair_scores(user_n, item_n, users, pos, neg)
        return branch_bpr_loss(pos_p, neg_p, pos_n, neg_n, positive, self.b)
