"""Closed-form item-item models: EASE (Steck 2019), EDLAE (Steck 2020) and PN-EASE, the
positive/negative form.

EASE regresses every item column of the user x item matrix X on all the other columns,

    B = argmin ||X - X B||² + λ ||B||²   subject to diag(B) = 0
      = I - P · diag(1 / diag(P)),       P = (XᵀX + λI)⁻¹,

and scores a user by x_u B. Which ratings form X is a choice (``ease_ratings``): all of them
(a 2-star rating still says "watched") or only the liked ones.

EDLAE, the emphasized denoising linear autoencoder (Steck, "Autoencoders that don't overfit
towards the identity", NeurIPS 2020), trains X B to reconstruct X from X with each input dropped
with probability p, the dropped entries' errors emphasized. Its full-rank closed form is EASE's with
a ridge that grows with each item's own mass,

    B = I - P · diag(1 / diag(P)),   P = (XᵀX + Λ)⁻¹,   Λ = p/(1-p) · diag(XᵀX) + λI,

so popular items, whose columns would otherwise explain themselves, are penalised more (p → 0 is EASE).

PN-EASE keeps the two kinds apart, as PN-GNN's two graphs do: X₂ = [L, w·D] stacks the liked
(r > threshold) and the disliked ratings side by side, 2n columns. The model predicts both blocks
from both, and an item may not explain itself through either of its columns: for each item j the
pair S_j = {j, n + j} is held out of its own regression, which gives the block form of EASE's
closed form,

    B = I - P · blockdiag_j(P[S_j, S_j])⁻¹,   P = (X₂ᵀX₂ + λI)⁻¹.

The score is the predicted liked block plus γ times the predicted disliked block (rescaled by
1/w): ŷ_u = x₂ᵤ (B[:, L] + γ/w · B[:, D]). With w and γ validated, a disliked rating can count
as "watched" (γ > 0, recall) or as a warning (γ < 0, precision), separately as input and output.

Two more members of the family are candidates beside it (``pngnn tune --grid`` compares them on
validation). PN-EDLAE, PN-EASE's denoising form (``pn_dropout`` = p > 0), gives its 2n inputs
EDLAE's ridge, P = (X₂ᵀX₂ + p/(1-p) · diag(X₂ᵀX₂) + λI)⁻¹, the block form unchanged. Weighted-input
EASE (``weighted-ease``) is the simplest one: a single n-column regression, EASE on
X = L + w·D, where a disliked rating is a down-weighted "watched" and never a separate signal;
``pn_dropout`` gives it EDLAE's ridge as well.

Both are ``ItemLinear`` modules: the users' input rows as a CSR index and the (inputs x items)
weights as buffers, so the registry pickles them like any other model and scoring needs no
training data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np
import torch

from pngnn.core.config import RATING_SETS
from pngnn.core.constants import LIKE_THRESHOLD
from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions
from pngnn.evaluation.evaluate import csr_rows, gather_rows
from pngnn.models.base import GraphRecommender
from pngnn.models.factors import CsrRows, ScoreFactors
from pngnn.models.gram import gram_inverse
from pngnn.models.gram_device import gram_inverse_on
from pngnn.models.graph import csr_tensor

# The closed forms' precision: float32 halves the n² matrix against float64 and moves no metric of
# ML-1M (benchmarks/results/closed_form_precision.json).
GRAM_DTYPE = np.dtype(np.float32)
# Rows per step when weights are made from P: bounds the temporaries to WEIGHT_BLOCK x n.
WEIGHT_BLOCK = 1024

T = TypeVar("T")


# While a grid study runs (``reuse_inverses``): the last costly part of a fit and what it was made
# from, so trials that differ only in how it is read (PN-EASE's disliked_score reads P, GF-CF's
# alpha weighs its eigenvectors) skip the factorization.
_LAST_FIT: ContextVar[dict[tuple[Any, ...], Any] | None] = ContextVar("pngnn_last_fit", default=None)


@contextmanager
def reuse_inverses() -> Iterator[None]:
    """Within the block, a fit whose costly part (EASE's P = (XᵀX + Λ)⁻¹, GF-CF's eigenvectors) is
    the one the previous fit made reuses it: the last one is kept, and dropped at the end of the block."""
    token = _LAST_FIT.set({})
    try:
        yield
    finally:
        _LAST_FIT.reset(token)


def remembered(key: Callable[[], tuple[Any, ...]], make: Callable[[], T], fresh: Callable[[T], T]) -> T:
    """``make()``, or inside ``reuse_inverses`` ``fresh`` of what it made last time under the same
    key (``fresh`` copies what the caller will write into). The key is a callable because it
    hashes every rating: only a grid study pays for it."""
    memo = _LAST_FIT.get()
    if memo is None:
        return make()
    k = key()
    if k not in memo:
        memo.clear()
        memo[k] = make()
    return fresh(memo[k])


def inverse(columns: Interactions, n_users: int, n_cols: int, lam: float, dtype: np.dtype, method: str,
            n_items: int | None = None, diagonal_weight: float = 0.0, device: torch.device | None = None
            ) -> np.ndarray:
    """P = (XᵀX + Λ)⁻¹ by LAPACK on the CPU (``pngnn.models.gram``), or on ``device`` when it is an
    accelerator (``pngnn.models.gram_device``); the previous fit's P again inside ``reuse_inverses``
    when it was made from the same columns and ridge. The caller may overwrite P (the weights are
    made in place), so a reused P is handed out as a copy."""
    def make() -> np.ndarray:
        if device is not None and device.type != "cpu":
            return gram_inverse_on(device, columns, n_users, n_cols, lam, diagonal_weight, dtype, method, n_items)
        return gram_inverse(columns, n_users, n_cols, lam, dtype, method, n_items, diagonal_weight)

    return remembered(lambda: (columns.digest(), n_users, n_cols, lam, np.dtype(dtype).str, diagonal_weight),
                      make, np.copy)


def ease_weights(p: np.ndarray) -> np.ndarray:
    """EASE's B = I - P diag(1/diag P), written over P: zero diagonal, each column a constrained ridge solve."""
    diagonal = p.diagonal().copy()
    for start in range(0, p.shape[0], WEIGHT_BLOCK):  # row blocks: no second n x n temporary
        rows = p[start:start + WEIGHT_BLOCK]
        np.divide(rows, -diagonal, out=rows)
    np.fill_diagonal(p, 0.0)
    return p


def pn_ease_weights(p: np.ndarray, n_items: int, score_weight: float) -> np.ndarray:
    """PN-EASE's scoring weights B[:, L] + score_weight · B[:, D] [2n, n], from P [2n, 2n], where
    B = I - P blockdiag(P[S_j, S_j])⁻¹ with S_j = {j, n + j}.

    Each item's 2 x 2 block is inverted in closed form, all items at once; the two target blocks
    are combined as they are made, a block of rows at a time, so only the [2n, n] result is new."""
    idx = np.arange(n_items)
    a, c, d = p[idx, idx].copy(), p[idx, n_items + idx].copy(), p[n_items + idx, n_items + idx].copy()
    det = a * d - c * c
    inv_ll, inv_ld, inv_dd = d / det, -c / det, a / det
    liked_coef = -(inv_ll + score_weight * inv_ld)  # what P[:, L] contributes to each scored item
    disliked_coef = -(inv_ld + score_weight * inv_dd)  # and P[:, D]
    out = np.empty((p.shape[0], n_items), dtype=p.dtype)
    for start in range(0, p.shape[0], WEIGHT_BLOCK):
        stop = start + WEIGHT_BLOCK
        np.multiply(p[start:stop, :n_items], liked_coef, out=out[start:stop])
        out[start:stop] += p[start:stop, n_items:] * disliked_coef
    out[idx, idx] += 1.0
    out[n_items + idx, idx] += score_weight
    return out


class ItemLinear(GraphRecommender):
    """Scores x_u W for the users' stored input rows x_u (CSR) and item weights W [inputs, items]."""

    # buffers
    indptr: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    weights: torch.Tensor

    kept: torch.Tensor  # the catalogue items the weights' columns score (all of them: arange)

    def __init__(self, inputs: Interactions, n_users: int, weights: torch.Tensor, n_items: int | None = None,
                 kept: np.ndarray | None = None) -> None:
        """``kept``: the items (of ``n_items``) that the weights' columns score, when the model was
        fitted on the most-rated ones only; the others score -inf and are never recommended."""
        super().__init__()
        self.n_users, self.n_items = n_users, n_items or weights.shape[1]
        self.n_inputs = weights.shape[0]
        kept_items = np.arange(self.n_items) if kept is None else np.asarray(kept, dtype=np.int64)
        self.register_buffer("kept", torch.from_numpy(kept_items))
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
        # The block's input rows as a CSR matrix times the weights: each stored entry reads one row
        # of W, where a dense block would multiply every zero of the users' rows too (at ML-1M's
        # density the sparse product is already faster; at a 20k-item catalogue, ~3x).
        ids = users.numpy()
        _, pos = gather_rows(self.indptr.numpy(), np.arange(len(self.cols)), ids)
        lengths = self.indptr[1:][ids] - self.indptr[:-1][ids]
        crow = torch.zeros(len(ids) + 1, dtype=torch.int64)
        torch.cumsum(lengths, 0, out=crow[1:])
        block = csr_tensor(crow, self.cols[pos], self.values[pos], (len(ids), self.n_inputs))
        scores = torch.sparse.mm(block, self.weights)
        if self.weights.shape[1] == self.n_items:
            return scores
        full = torch.full((len(users), self.n_items), -torch.inf)
        full[:, self.kept] = scores
        return full

    def score_factors(self) -> ScoreFactors:
        """The users' input rows as they are stored (CSR) and the weights."""
        rows = CsrRows(self.indptr.numpy(), self.cols.numpy(), self.values.numpy(), self.n_inputs)
        if self.weights.shape[1] == self.n_items:
            return ScoreFactors(rows, self.weights.numpy())
        # the kept items' columns only; the items left out score -inf and are never served
        return ScoreFactors(rows, self.weights.numpy(), item_index=self.kept.numpy(), catalogue_size=self.n_items)

    def extra_repr(self) -> str:
        return f"n_users={self.n_users}, n_items={self.n_items}, n_inputs={self.n_inputs}"


def ease_inputs(train: Interactions, ratings: str, threshold: float) -> Interactions:
    """EASE's X: every train rating (``all``) or the liked ones (``liked``), as ones."""
    if ratings not in RATING_SETS:
        raise PngnnError(f"unknown EASE ratings '{ratings}'; choose one of {', '.join(RATING_SETS)}")
    rows = train if ratings == "all" else train.positive(threshold)
    return Interactions(rows.users, rows.items, np.ones(len(rows), dtype=np.float32))


def most_rated(train: Interactions, n_items: int, max_items: int) -> np.ndarray | None:
    """The ``max_items`` items with the most train ratings (ties by item order), sorted; None for all."""
    if not 0 < max_items < n_items:
        return None
    counts = np.bincount(train.items, minlength=n_items)
    return np.sort(np.argsort(-counts, kind="stable")[:max_items])


def keep_items(rows: Interactions, kept: np.ndarray | None, n_items: int) -> Interactions:
    """``rows`` on the kept items only, their item ids renumbered 0..len(kept)-1."""
    if kept is None:
        return rows
    new_id = np.full(n_items, -1, dtype=np.int64)
    new_id[kept] = np.arange(len(kept))
    mask = new_id[rows.items] >= 0
    return Interactions(rows.users[mask], new_id[rows.items[mask]], rows.ratings[mask])


def dropout_ridge(dropout: float, method: str, none_allowed: bool = True) -> float:
    """EDLAE's per-item ridge factor p/(1-p) for dropout probability p (0: no denoising, where allowed)."""
    if not (0 <= dropout < 1 if none_allowed else 0 < dropout < 1):
        interval, hint = ("[0, 1)", "0.25 (0: none)") if none_allowed else ("(0, 1)", "0.25")
        raise PngnnError(f"{method}'s dropout probability must lie in {interval}, got {dropout}; try {hint}")
    return dropout / (1 - dropout)


def _fit_on(inputs: Interactions, train: Interactions, n_users: int, n_items: int, lam: float, method: str,
            diagonal_weight: float, dtype: np.dtype, max_items: int, device: torch.device | None) -> ItemLinear:
    """EASE's constrained closed form on ``inputs`` (n item columns), the ridge λI + diagonal_weight ·
    diag(XᵀX): what EASE, EDLAE and weighted EASE share, differing only in X and the ridge."""
    kept = most_rated(train, n_items, max_items)
    x = keep_items(inputs, kept, n_items)
    m = n_items if kept is None else len(kept)
    p = inverse(x, n_users, m, lam, np.dtype(dtype), method, diagonal_weight=diagonal_weight, device=device)
    return ItemLinear(x, n_users, torch.from_numpy(ease_weights(p)), n_items, kept)


def fit_ease(train: Interactions, n_users: int, n_items: int, lam: float, ratings: str = "all",
             threshold: float = LIKE_THRESHOLD, dtype: np.dtype = GRAM_DTYPE, max_items: int = 0,
             device: torch.device | None = None) -> ItemLinear:
    return _fit_on(ease_inputs(train, ratings, threshold), train, n_users, n_items, lam, "EASE", 0.0, dtype,
                   max_items, device)


def fit_edlae(train: Interactions, n_users: int, n_items: int, lam: float, dropout: float, ratings: str = "all",
              threshold: float = LIKE_THRESHOLD, dtype: np.dtype = GRAM_DTYPE, max_items: int = 0,
              device: torch.device | None = None) -> ItemLinear:
    """EDLAE's full-rank closed form (module docstring): EASE's fit with Λ = p/(1-p) diag(XᵀX) + λI."""
    ridge = dropout_ridge(dropout, "EDLAE", none_allowed=False)
    return _fit_on(ease_inputs(train, ratings, threshold), train, n_users, n_items, lam, "EDLAE", ridge, dtype,
                   max_items, device)


def pn_inputs(train: Interactions, n_items: int, disliked_input: float, threshold: float) -> Interactions:
    """X₂ = [L, w·D]: liked ratings in columns 0..n-1 (value 1), disliked ones in n..2n-1 (value w)."""
    if not disliked_input > 0:
        raise PngnnError(f"PN-EASE's disliked input weight must be > 0, got {disliked_input}; try 1.0")
    liked = train.ratings > threshold
    cols = np.where(liked, train.items, train.items + n_items)
    values = np.where(liked, 1.0, disliked_input).astype(np.float32)
    return Interactions(train.users, cols, values)


def fit_pn_ease(train: Interactions, n_users: int, n_items: int, lam: float, disliked_input: float = 1.0,
                disliked_score: float = 0.25, threshold: float = LIKE_THRESHOLD,
                dtype: np.dtype = GRAM_DTYPE, max_items: int = 0, device: torch.device | None = None,
                dropout: float = 0.0) -> ItemLinear:
    """PN-EASE, or with ``dropout`` p > 0 its denoising form PN-EDLAE (module docstring)."""
    ridge = dropout_ridge(dropout, "PN-EASE")
    kept = most_rated(train, n_items, max_items)
    m = n_items if kept is None else len(kept)
    x = pn_inputs(keep_items(train, kept, n_items), m, disliked_input, threshold)
    p = inverse(x, n_users, 2 * m, lam, np.dtype(dtype), "PN-EASE", n_items=m,
                diagonal_weight=ridge, device=device)
    weights = pn_ease_weights(p, m, disliked_score / disliked_input)
    del p  # the 2m x 2m matrix goes before the model is built
    return ItemLinear(x, n_users, torch.from_numpy(weights), n_items, kept)


def weighted_inputs(train: Interactions, disliked_input: float, threshold: float) -> Interactions:
    """X = L + w·D: a liked rating is 1 and a disliked one w, in the same item column."""
    if not disliked_input > 0:
        raise PngnnError(f"weighted EASE's disliked input weight must be > 0, got {disliked_input}; try 0.25")
    values = np.where(train.ratings > threshold, 1.0, disliked_input).astype(np.float32)
    return Interactions(train.users, train.items, values)


def fit_weighted_ease(train: Interactions, n_users: int, n_items: int, lam: float, disliked_input: float,
                      threshold: float = LIKE_THRESHOLD, dtype: np.dtype = GRAM_DTYPE, max_items: int = 0,
                      device: torch.device | None = None, dropout: float = 0.0) -> ItemLinear:
    """EASE on X = L + w·D (module docstring): w = 1 is EASE on every rating; w → 0 on the liked ones.
    ``dropout`` p > 0: EDLAE's ridge, Λ = p/(1-p) diag(XᵀX) + λI."""
    ridge = dropout_ridge(dropout, "weighted EASE")
    return _fit_on(weighted_inputs(train, disliked_input, threshold), train, n_users, n_items, lam, "weighted EASE",
                   ridge, dtype, max_items, device)
