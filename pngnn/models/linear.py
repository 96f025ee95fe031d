"""Closed-form item-item models: EASE (Steck 2019) and PN-EASE, its positive/negative form.

EASE regresses every item column of the user x item matrix X on all the other columns,

    B = argmin ||X - X B||² + λ ||B||²   subject to diag(B) = 0
      = I - P · diag(1 / diag(P)),       P = (XᵀX + λI)⁻¹,

and scores a user by x_u B. Which ratings form X is a choice (``ease_ratings``): all of them
(a 2-star rating still says "watched") or only the liked ones.

PN-EASE keeps the two kinds apart, as PN-GNN's two graphs do: X₂ = [L, w·D] stacks the liked
(r > threshold) and the disliked ratings side by side, 2n columns. The model predicts both blocks
from both, and an item may not explain itself through either of its columns: for each item j the
pair S_j = {j, n + j} is held out of its own regression, which gives the block form of EASE's
closed form,

    B = I - P · blockdiag_j(P[S_j, S_j])⁻¹,   P = (X₂ᵀX₂ + λI)⁻¹.

The score is the predicted liked block plus γ times the predicted disliked block (rescaled by
1/w): ŷ_u = x₂ᵤ (B[:, L] + γ/w · B[:, D]). With w and γ validated, a disliked rating can count
as "watched" (γ > 0, recall) or as a warning (γ < 0, precision), separately as input and output.

Both are ``ItemLinear`` modules: the users' input rows as a CSR index and the (inputs x items)
weights as buffers, so the registry pickles them like any other model and scoring needs no
training data.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from pngnn.core.config import RATING_SETS
from pngnn.core.constants import LIKE_THRESHOLD
from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions
from pngnn.evaluation.evaluate import csr_rows, gather_rows
from pngnn.models.base import GraphRecommender
from pngnn.models.factors import CsrRows, ScoreFactors


def gram_inverse(columns: Interactions, n_users: int, n_cols: int, lam: float) -> torch.Tensor:
    """P = (XᵀX + λI)⁻¹ in float64 for the binary-or-weighted matrix X given as (user, column, value).

    XᵀX is accumulated as a dense matrix from the sparse rows; the inverse goes through a
    Cholesky factor (XᵀX + λI is symmetric positive definite for λ > 0)."""
    if not lam > 0:
        raise PngnnError(f"EASE's ridge penalty lambda must be > 0, got {lam}; try 500")
    import scipy.sparse as sp

    x = sp.csr_matrix((columns.ratings.astype(np.float64), (columns.users, columns.items)), shape=(n_users, n_cols))
    gram = torch.from_numpy((x.T @ x).toarray())
    gram.diagonal().add_(lam)
    return torch.cholesky_inverse(torch.linalg.cholesky(gram))


def ease_weights(p: torch.Tensor) -> torch.Tensor:
    """EASE's B = I - P diag(1/diag P): zero diagonal, each column a constrained ridge solve."""
    b = -p / p.diagonal()
    b.diagonal().zero_()
    return b


def blocked_ease_weights(p: torch.Tensor, n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B = I - P blockdiag(P[S_j, S_j])⁻¹ with S_j = {j, n + j}: (liked-target, disliked-target) columns.

    Each item's 2 x 2 block is inverted in closed form, all items at once."""
    idx = torch.arange(n_items)
    a, c, d = p[idx, idx], p[idx, n_items + idx], p[n_items + idx, n_items + idx]
    det = a * d - c * c
    inv_ll, inv_ld, inv_dd = d / det, -c / det, a / det
    p_l, p_d = p[:, :n_items], p[:, n_items:]
    b_liked = -(p_l * inv_ll + p_d * inv_ld)
    b_disliked = -(p_l * inv_ld + p_d * inv_dd)
    b_liked[idx, idx] += 1.0
    b_disliked[n_items + idx, idx] += 1.0
    return b_liked, b_disliked


class ItemLinear(GraphRecommender):
    """Scores x_u W for the users' stored input rows x_u (CSR) and item weights W [inputs, items]."""

    # buffers
    indptr: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    weights: torch.Tensor

    def __init__(self, inputs: Interactions, n_users: int, weights: torch.Tensor) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, weights.shape[1]
        self.n_inputs = weights.shape[0]
        indptr, cols = csr_rows(inputs.users, inputs.items, n_users)
        order = np.argsort(inputs.users, kind="stable")
        self.register_buffer("indptr", torch.from_numpy(indptr))
        self.register_buffer("cols", torch.from_numpy(cols))
        self.register_buffer("values", torch.from_numpy(inputs.ratings[order].astype(np.float32)))
        self.register_buffer("weights", weights.float().contiguous())

    def scorer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.full_sort_predict

    @torch.no_grad()
    def full_sort_predict(self, users: torch.Tensor) -> torch.Tensor:
        # The block's entries by position in the CSR arrays, then their columns and values.
        rows, pos = gather_rows(self.indptr.numpy(), np.arange(len(self.cols)), users.numpy())
        x = torch.zeros(len(users), self.n_inputs)
        x[rows, self.cols[pos]] = self.values[pos]
        return x @ self.weights

    def score_factors(self) -> ScoreFactors:
        """The users' input rows as they are stored (CSR) and the weights."""
        rows = CsrRows(self.indptr.numpy(), self.cols.numpy(), self.values.numpy(), self.n_inputs)
        return ScoreFactors(rows, self.weights.numpy())

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, n_items={self.n_items}, n_inputs={self.n_inputs}"


def ease_inputs(train: Interactions, ratings: str, threshold: float) -> Interactions:
    """EASE's X: every train rating (``all``) or the liked ones (``liked``), as ones."""
    if ratings not in RATING_SETS:
        raise PngnnError(f"unknown EASE ratings '{ratings}'; choose one of {', '.join(RATING_SETS)}")
    rows = train if ratings == "all" else train.positive(threshold)
    return Interactions(rows.users, rows.items, np.ones(len(rows), dtype=np.float32))


def fit_ease(train: Interactions, n_users: int, n_items: int, lam: float, ratings: str = "all",
             threshold: float = LIKE_THRESHOLD) -> ItemLinear:
    x = ease_inputs(train, ratings, threshold)
    return ItemLinear(x, n_users, ease_weights(gram_inverse(x, n_users, n_items, lam)))


def pn_inputs(train: Interactions, n_items: int, disliked_input: float, threshold: float) -> Interactions:
    """X₂ = [L, w·D]: liked ratings in columns 0..n-1 (value 1), disliked ones in n..2n-1 (value w)."""
    if not disliked_input > 0:
        raise PngnnError(f"PN-EASE's disliked input weight must be > 0, got {disliked_input}; try 1.0")
    liked = train.ratings > threshold
    cols = np.where(liked, train.items, train.items + n_items)
    values = np.where(liked, 1.0, disliked_input).astype(np.float32)
    return Interactions(train.users, cols, values)


def fit_pn_ease(train: Interactions, n_users: int, n_items: int, lam: float, disliked_input: float = 1.0,
                disliked_score: float = 0.25, threshold: float = LIKE_THRESHOLD) -> ItemLinear:
    x = pn_inputs(train, n_items, disliked_input, threshold)
    b_liked, b_disliked = blocked_ease_weights(gram_inverse(x, n_users, 2 * n_items, lam), n_items)
    weights = b_liked + (disliked_score / disliked_input) * b_disliked
    return ItemLinear(x, n_users, weights)
