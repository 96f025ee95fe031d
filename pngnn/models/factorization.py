"""iALS (Hu, Koren & Volinsky 2008) through the ``implicit`` library, as a dot-product model.

``implicit.als.AlternatingLeastSquares`` (CPU build) minimises
sum_ui c_ui (p_ui - x_uᵀy_i)² + reg (||X||² + ||Y||²) with p_ui = 1 on the observed entries and
confidence c_ui = 1 + alpha for them (1 elsewhere). The observed entries are every train rating
or only the liked ones (``ials_ratings``, validated like the other settings). The fitted factors
become the buffers of an ``EmbeddingModel``, so the registry stores numbers, not the library's
object, and scoring is one matmul like every other model here.
"""

from __future__ import annotations

import numpy as np
import torch

from pngnn.core.constants import LIKE_THRESHOLD
from pngnn.data.split import Interactions
from pngnn.models.base import GraphRecommender


class EmbeddingModel(GraphRecommender):
    """Fixed user and item vectors: y_ui = x_u · y_i."""

    # buffers
    user_factors: torch.Tensor
    item_factors: torch.Tensor

    def __init__(self, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
        super().__init__()
        self.n_users, self.n_items = len(user_factors), len(item_factors)
        self.register_buffer("user_factors", torch.from_numpy(np.ascontiguousarray(user_factors, np.float32)))
        self.register_buffer("item_factors", torch.from_numpy(np.ascontiguousarray(item_factors, np.float32)))

    @torch.no_grad()
    def final_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_factors, self.item_factors


def fit_ials(train: Interactions, n_users: int, n_items: int, factors: int, reg: float, alpha: float,
             iterations: int, ratings: str = "all", threshold: float = LIKE_THRESHOLD, seed: int = 0,
             threads: int | None = None) -> EmbeddingModel:
    """Fit iALS on the chosen train ratings (binary preferences) and return its factors."""
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    rows = train if ratings == "all" else train.positive(threshold)
    user_items = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows.users, rows.items)),
                               shape=(n_users, n_items))
    user_items.sum_duplicates()
    user_items.data[:] = 1.0
    # implicit parallelises over users itself: BLAS threads inside its solver would only contend.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=factors, regularization=reg, alpha=alpha, iterations=iterations,
                                        random_state=seed, num_threads=threads or torch.get_num_threads(),
                                        calculate_training_loss=False)
        model.fit(user_items, show_progress=False)
    return EmbeddingModel(np.asarray(model.user_factors), np.asarray(model.item_factors))
