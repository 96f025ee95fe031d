"""The closed forms' P = (XᵀX + Λ)⁻¹ on an accelerator (``--device cuda``).

Why: the fit is one dense Gram, one Cholesky factorisation and one inverse, which a GPU does in
seconds where the CPU takes minutes at ML-20M's catalogue. The Gram is accumulated from dense
blocks of user rows (``addmm_`` into one buffer), factored in place and inverted; the inverse
comes back to the host, where the weights are made as on the CPU path (``pngnn.models.gram``).
Its memory on the device (the Gram and its inverse, two n x n matrices, and one block of rows) is
checked against what the device has free before anything is allocated there.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions
from pngnn.models.gram import BLOCK, FLOAT32, check_memory, check_ridge


def device_free_bytes(device: torch.device) -> int | None:
    """What ``device`` can still hand out; None where torch cannot say (the CPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return None


def check_device_memory(method: str, n_cols: int, n_items: int, dtype: np.dtype, device: torch.device,
                        free: int | None = None) -> None:
    """Refuse, before anything is allocated on ``device``, a fit that cannot fit there (``n_items``:
    the catalogue of ``n_cols`` columns, which PN-EASE doubles)."""
    size = np.dtype(dtype).itemsize
    need = 2 * n_cols * n_cols * size + BLOCK * n_cols * size
    free = device_free_bytes(device) if free is None else free
    if free is None or need <= free:
        return
    fits = int((free / (2 * size)) ** 0.5 * 0.9) * n_items // n_cols
    raise PngnnError(f"{method} on {n_items:,} items needs about {need / 2**30:.1f} GB on {device} and "
                     f"{free / 2**30:.1f} GB is free there; set ease_max_items={fits} (--set ease_max_items={fits}) "
                     "to fit it on the most-rated items, or train it with --device cpu")


def gram_inverse_on(device: torch.device, columns: Interactions, n_users: int, n_cols: int,
                    lam: float, diagonal_weight: float = 0.0, dtype: np.dtype = FLOAT32,
                    method: str = "EASE", n_items: int | None = None) -> np.ndarray:
    """``pngnn.models.gram.gram_inverse`` computed on ``device``: P as a host array, symmetric (the
    host's memory for it checked too)."""
    check_ridge(lam)
    check_memory(method, n_cols, n_items or n_cols, dtype)
    check_device_memory(method, n_cols, n_items or n_cols, dtype, device)
    torch_dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    x = sp.csr_matrix((columns.ratings.astype(dtype), (columns.users, columns.items)), shape=(n_users, n_cols))
    gram = torch.zeros((n_cols, n_cols), dtype=torch_dtype, device=device)
    for start in range(0, n_users, BLOCK):
        block = x[start:start + BLOCK]
        if block.nnz:
            rows = torch.from_numpy(block.toarray()).to(device)
            gram.addmm_(rows.T, rows)
            del rows
    diagonal = gram.diagonal()
    diagonal.add_(lam + diagonal_weight * diagonal if diagonal_weight else lam)  # the right side is a copy
    factor, info = torch.linalg.cholesky_ex(gram)
    del gram, diagonal
    if int(info) != 0:
        raise PngnnError(f"the closed form's Gram matrix is not positive definite (Cholesky info {int(info)}); "
                         "raise the ridge penalty ease_lambda, e.g. --set ease_lambda=500")
    inverse = torch.cholesky_inverse(factor)
    del factor
    return inverse.cpu().numpy()
