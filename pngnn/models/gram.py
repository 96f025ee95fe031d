"""The closed-form models' one big matrix: P = (XᵀX + λI)⁻¹, built and inverted in place.

Why it is done this way: at a catalogue of n columns the dense n x n matrix is the whole memory
bill (26,744 ML-20M items: 2.9 GB in float32, 5.7 GB in float64; PN-EASE's 2n columns four times
that). So the Gram XᵀX is accumulated densely from blocks of user rows by BLAS' symmetric
rank-k update (``syrk``: half a general product's work, and it adds into the Gram itself, where
``gram += block.T @ block`` would make a second n x n temporary), the ridge added on its diagonal,
and LAPACK's Cholesky factorisation and inverse (``potrf``, ``potri``) overwrite that same buffer,
all three on one triangle: one n x n matrix from first to last.
The caller derives the weights in place too. Before anything is allocated, ``check_memory``
compares what the fit will hold with what the machine has free and refuses in one line that
names the need and the setting that fits (``ease_max_items``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas, lapack

from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions

FLOAT32 = np.dtype(np.float32)
# User rows per dense block of the Gram's accumulation: bounds its temporary to BLOCK x n.
BLOCK = 2048
# Columns per step when the inverse's upper triangle is copied from its lower one.
SYMMETRIZE_BLOCK = 1024


def available_bytes() -> int | None:
    """What the machine can still hand out (Linux' MemAvailable); None where it cannot be read."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def fit_bytes(n_cols: int, n_items: int, dtype: np.dtype, squares: int = 1) -> int:
    """What a fit holds at its peak: ``squares`` n_cols² matrices (GF-CF's eigensolver works on a
    copy: 2), the [n_cols, n_items] weights when they are a second array (PN-EASE; EASE's are made
    in place), and one block of user rows."""
    size = np.dtype(dtype).itemsize
    weights = n_cols * n_items * size if n_cols != n_items else 0
    return squares * n_cols * n_cols * size + weights + BLOCK * n_cols * size


def check_memory(method: str, n_cols: int, n_items: int, dtype: np.dtype, available: int | None = None,
                 squares: int = 1) -> None:
    """Refuse, before any allocation, a fit that cannot fit in the memory free now."""
    need = fit_bytes(n_cols, n_items, dtype, squares)
    free = available_bytes() if available is None else available
    if free is None or need <= free:
        return
    # the largest catalogue that fits: solve the quadratic need(n) = free for n (EASE: n² s; PN-EASE: 6 n² s)
    size = np.dtype(dtype).itemsize
    per_item = size * (squares if n_cols == n_items else 6)
    fits = int((free / per_item) ** 0.5 * 0.9)
    raise PngnnError(f"{method} on {n_items:,} items needs about {need / 2**30:.1f} GB ({n_cols:,} x {n_cols:,} "
                     f"{np.dtype(dtype).name} matrix{' and its weights' if n_cols != n_items else ''}) and "
                     f"{free / 2**30:.1f} GB is free; set ease_max_items={fits} (--set ease_max_items={fits}) to fit "
                     "it on the most-rated items")


def check_ridge(lam: float) -> None:
    if not lam > 0:
        raise PngnnError(f"EASE's ridge penalty lambda must be > 0, got {lam}; try 500")


def lower_gram(columns: Interactions, n_users: int, n_cols: int, dtype: np.dtype) -> np.ndarray:
    """XᵀX in one C-ordered [n_cols, n_cols] array whose Fortran view's lower triangle (what LAPACK
    reads with ``lower=True``) holds the product; the other triangle stays zero."""
    x = sp.csr_matrix((columns.ratings.astype(dtype), (columns.users, columns.items)), shape=(n_users, n_cols))
    gram = np.zeros((n_cols, n_cols), dtype=dtype)
    f = gram.T  # Fortran order: BLAS adds into it without a copy
    (syrk,) = blas.get_blas_funcs(("syrk",), (f,))
    for start in range(0, n_users, BLOCK):
        block = x[start:start + BLOCK]
        if block.nnz:
            rows_t = block.toarray().T  # [n_cols, rows], Fortran-contiguous: C += A Aᵀ
            updated = syrk(1.0, rows_t, trans=0, beta=1.0, c=f, overwrite_c=1, lower=1)
            if not np.shares_memory(updated, gram):  # a BLAS that copied would drop the update
                raise RuntimeError("syrk did not update the Gram in place")
    return gram


def mirror_lower(f: np.ndarray) -> np.ndarray:
    """Copy the lower triangle of the square ``f`` onto its upper one, a block of columns at a time."""
    n = f.shape[0]
    for start in range(0, n, SYMMETRIZE_BLOCK):
        stop = min(start + SYMMETRIZE_BLOCK, n)
        f[start:stop, stop:] = f[stop:, start:stop].T
        block = f[start:stop, start:stop]
        block[np.triu_indices(stop - start, 1)] = block.T[np.triu_indices(stop - start, 1)]
    return f


def dense_gram(columns: Interactions, n_users: int, n_cols: int, dtype: np.dtype) -> np.ndarray:
    """XᵀX as one dense, symmetric, C-ordered [n_cols, n_cols] array."""
    gram = lower_gram(columns, n_users, n_cols, dtype)
    mirror_lower(gram.T)
    return gram


def invert_in_place(gram: np.ndarray, lam: float | np.ndarray) -> np.ndarray:
    """(gram + Λ)⁻¹, written over ``gram`` (C-ordered; only its Fortran view's lower triangle is
    read): the same memory is returned, symmetric. ``lam``: the ridge, one number (Λ = λI) or one
    per column (Λ = diag(lam), EDLAE's)."""
    gram[np.diag_indices_from(gram)] += lam
    f = gram.T  # the same memory in Fortran order, which LAPACK overwrites without a copy
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (f,))
    factor, info = potrf(f, lower=True, overwrite_a=True, clean=False)
    if info != 0:
        raise PngnnError(f"the closed form's Gram matrix is not positive definite (LAPACK potrf info {info}); raise "
                         "the ridge penalty ease_lambda, e.g. --set ease_lambda=500")
    inverse, info = potri(factor, lower=True, overwrite_c=True)
    if info != 0 or not np.shares_memory(inverse, gram):
        raise PngnnError(f"the closed form's inverse failed (LAPACK potri info {info}); raise ease_lambda")
    mirror_lower(f)  # the lower triangle holds the inverse
    return gram


def gram_inverse(columns: Interactions, n_users: int, n_cols: int, lam: float,
                 dtype: np.dtype = FLOAT32, method: str = "EASE", n_items: int | None = None,
                 diagonal_weight: float = 0.0) -> np.ndarray:
    """P = (XᵀX + Λ)⁻¹ for the binary-or-weighted matrix X given as (user, column, value): one
    dense n_cols² array from start to end, checked against the free memory first. Λ = λI, plus
    ``diagonal_weight`` x diag(XᵀX) (EDLAE's dropout penalty: each column's own mass)."""
    check_ridge(lam)
    check_memory(method, n_cols, n_items or n_cols, dtype)
    gram = lower_gram(columns, n_users, n_cols, dtype)
    ridge = lam + diagonal_weight * gram.diagonal() if diagonal_weight else lam
    return invert_in_place(gram, ridge)
