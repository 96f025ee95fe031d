"""LightGCN (He et al., SIGIR 2020).

    E^(0)  learnable user and item embeddings (one table, users first)
    E^(k+1) = A_hat E^(k),  A_hat = D^-1/2 A D^-1/2 of the user-item graph
    Z = 1/(K+1) * sum_{k=0..K} E^(k)
    y_ui = z_u . z_i

trained with BPR over (u, i, j) triples and L2 on the batch's layer-0 embeddings.
The propagation uses ``pngnn.models.graph.propagate``, whose backward is the forward again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pngnn.models.base import GraphRecommender
from pngnn.models.factors import ScoreFactors
from pngnn.models.graph import propagate
from pngnn.models.losses import bpr_loss, l2_penalty, pair_scores


class LightGCN(GraphRecommender):
    adj: torch.Tensor  # a non-persistent buffer: moves with .to(device), stays out of state_dict

    def __init__(self, adj: torch.Tensor, n_users: int, n_items: int, dim: int = 64, layers: int = 4,
                 l2: float = 0.0) -> None:
        super().__init__()
        self.n_users, self.n_items, self.layers, self.l2 = n_users, n_items, layers, l2
        self.register_buffer("adj", adj, persistent=False)
        self.embedding = nn.Embedding(n_users + n_items, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        z = propagate(self.adj, self.embedding.weight, self.layers)
        users, items = torch.split(z, [self.n_users, self.n_items])
        return users, items

    def calculate_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                       **batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        user_emb, item_emb = self.embeddings()
        _, pos_scores, neg_scores = pair_scores(user_emb, item_emb, users, pos, neg)
        loss = bpr_loss(pos_scores, neg_scores)
        reg = l2_penalty(self.embedding.weight, users, self.n_users + pos, self.n_users + neg)
        return loss + self.l2 * reg, {"bpr": loss.detach(), "l2": reg.detach()}

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, n_items={self.n_items}, layers={self.layers}"


class MostPopular(GraphRecommender):
    """Non-personalised baseline: every user gets items ranked by training popularity."""

    item_counts: torch.Tensor  # a buffer

    def __init__(self, item_counts: torch.Tensor, n_users: int) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, item_counts.numel()
        self.register_buffer("item_counts", item_counts.float())

    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.full_sort_predict

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        return self.item_counts.expand(len(users), -1).clone()

    def score_factors(self) -> ScoreFactors:
        """No user vectors (width 0): the popularity is the item bias."""
        return ScoreFactors(np.zeros((self.n_users, 0), np.float32), np.zeros((0, self.n_items), np.float32),
                            self.item_counts.cpu().numpy())
