"""The interface every recommender implements (after RecBole's ``GeneralRecommender``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pngnn.models.factors import ScoreFactors


class GraphRecommender(nn.Module):
    """A model that scores users against all items from propagated embeddings."""

    n_users: int
    n_items: int

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable propagated (user, item) embeddings used for scoring."""
        raise NotImplementedError

    def calculate_loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                       **batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one training batch: pairs (users[b], pos[b]) and negatives neg[b, :]; ``batch``
        holds the per-pair features of the batch by name. Returns the scalar loss to minimise and
        its named parts, detached (logged per epoch)."""
        raise NotImplementedError

    @torch.no_grad()
    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Propagated embeddings for ranking, computed once without autograd."""
        was_training = self.training
        self.eval()
        users, items = self.embeddings()
        self.train(was_training)
        return users.detach(), items.detach()

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of the given users against every item, shape [len(users), n_items], on the
        model's device."""
        return self.scorer()(users)

    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``full_sort_predict`` for many blocks of users: the graph is propagated once, here,
        not once a block (an evaluation ranks every user in blocks). Models that score without
        embeddings override it."""
        user_emb, item_emb = self.final_embeddings()

        def score(users: torch.Tensor) -> torch.Tensor:
            return user_emb[users.to(user_emb.device)] @ item_emb.T

        return score

    def score_factors(self) -> ScoreFactors:
        """The scores as arrays (users' vectors, item weights): what the registered model stores
        and serves instead of this module. Must score exactly as ``scorer``; models that score
        without embeddings override it."""
        user_emb, item_emb = self.final_embeddings()
        return ScoreFactors(user_emb.float().cpu().numpy(), item_emb.float().T.contiguous().cpu().numpy())
