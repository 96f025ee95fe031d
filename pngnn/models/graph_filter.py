"""GF-CF (Shen et al., "How powerful is graph convolution for recommendation?", CIKM 2021): a
training-free graph filter, the baseline a practitioner tries before any graph network.

With R the user x item matrix (binary), D_U and D_I its user and item degrees, the normalised
matrix R̃ = D_U^-1/2 R D_I^-1/2 and its item-item Gram P̃ = R̃ᵀR̃ (a linear low-pass filter on
the item graph), GF-CF scores a user's row r_u by

    s_u = r_u (P̃ + α · D_I^-1/2 V_k V_kᵀ D_I^1/2),

V_k the top-k right singular vectors of R̃ (the top-k eigenvectors of P̃: an ideal low-pass
filter that keeps the k smoothest signals). α weighs the ideal filter against the linear one.

The item-item matrix is the model: an ``ItemLinear`` like EASE's, so it is served, pickled and
scored the same way. P̃ is built by the same blocked BLAS as EASE's Gram (``pngnn.models.gram``);
the top k eigenpairs come from LAPACK's ``syevr`` on that one n x n matrix (float32).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import eigh

from pngnn.core.constants import LIKE_THRESHOLD
from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions
from pngnn.models.gram import check_memory, lower_gram, mirror_lower
from pngnn.models.linear import GRAM_DTYPE, WEIGHT_BLOCK, ItemLinear, ease_inputs, keep_items, most_rated, remembered


def normalized_rows(x: Interactions, n_users: int, n_items: int) -> tuple[Interactions, np.ndarray]:
    """(R̃ as (user, item, 1/sqrt(d_u d_i)), the item degrees d_i) of the binary ``x``."""
    d_user = np.bincount(x.users, minlength=n_users).astype(np.float64)
    d_item = np.bincount(x.items, minlength=n_items).astype(np.float64)
    values = 1.0 / np.sqrt(d_user[x.users] * d_item[x.items])
    return Interactions(x.users, x.items, values.astype(np.float32)), d_item


def low_pass_parts(normalized: Interactions, n_users: int, n_items: int, k: int,
                   dtype: np.dtype = GRAM_DTYPE) -> tuple[np.ndarray, np.ndarray]:
    """(P̃, V_k): the linear filter and the top-k eigenvectors of it, what every α shares."""
    gram = lower_gram(normalized, n_users, n_items, np.dtype(dtype))
    mirror_lower(gram.T)  # the full symmetric P̃ (C order: lower_gram filled its Fortran lower triangle)
    k = min(k, n_items)
    _, vectors = eigh(gram, subset_by_index=[n_items - k, n_items - 1], overwrite_a=False, check_finite=False)
    return gram, vectors


def gf_cf_weights(normalized: Interactions, n_users: int, n_items: int, d_item: np.ndarray, alpha: float,
                  k: int, dtype: np.dtype = GRAM_DTYPE) -> np.ndarray:
    """P̃ + α D_I^-1/2 V_k V_kᵀ D_I^1/2 as one dense [n_items, n_items] array (inside
    ``reuse_inverses``, a grid's points that differ only in α share one eigendecomposition)."""
    gram, vectors = remembered(
        lambda: ("gf-cf", normalized.digest(), n_users, n_items, k, np.dtype(dtype).str),
        lambda: low_pass_parts(normalized, n_users, n_items, k, dtype),
        lambda parts: (parts[0].copy(), parts[1]))  # the weights are made in P̃'s place
    scale = np.zeros(n_items)
    seen = d_item > 0
    scale[seen] = d_item[seen] ** -0.5
    left = (vectors * scale[:, None]).astype(dtype)  # D_I^-1/2 V_k
    right = (vectors.T * np.where(seen, np.sqrt(d_item), 0.0)[None, :]).astype(dtype)  # V_kᵀ D_I^1/2
    for start in range(0, n_items, WEIGHT_BLOCK):  # row blocks: no third n x n temporary
        gram[start:start + WEIGHT_BLOCK] += alpha * (left[start:start + WEIGHT_BLOCK] @ right)
    return gram


def fit_gf_cf(train: Interactions, n_users: int, n_items: int, alpha: float, k: int, ratings: str = "all",
              threshold: float = LIKE_THRESHOLD, dtype: np.dtype = GRAM_DTYPE, max_items: int = 0) -> ItemLinear:
    if not k >= 1:
        raise PngnnError(f"GF-CF's number of singular vectors must be at least 1, got {k}; try 256")
    kept = most_rated(train, n_items, max_items)
    x = keep_items(ease_inputs(train, ratings, threshold), kept, n_items)
    m = n_items if kept is None else len(kept)
    check_memory("GF-CF", m, m, np.dtype(dtype), squares=2)
    normalized, d_item = normalized_rows(x, n_users, m)
    weights = gf_cf_weights(normalized, n_users, m, d_item, alpha, k, np.dtype(dtype))
    return ItemLinear(x, n_users, torch.from_numpy(weights), n_items, kept)
