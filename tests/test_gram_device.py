"""The closed forms' inverse as computed for an accelerator (``pngnn.models.gram_device``), run here
on torch's CPU device: the same P as LAPACK's path, and a fit too big for the device refused in
one line before anything is allocated there. tests/test_cuda.py runs it on a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions
from pngnn.models.gram import gram_inverse
from pngnn.models.gram_device import check_device_memory, gram_inverse_on

CPU = torch.device("cpu")


def random_columns(seed: int, n_users: int = 300, n_cols: int = 40, nnz: int = 2000) -> Interactions:
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, n_users, nnz), rng.integers(0, n_cols, nnz)], axis=1), axis=0)
    values = rng.choice([1.0, 0.5], size=len(pairs)).astype(np.float32)
    return Interactions(pairs[:, 0], pairs[:, 1], values)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("diagonal_weight", [0.0, 0.33])
def test_the_device_path_gives_lapacks_inverse(seed, diagonal_weight):
    columns = random_columns(seed)
    dtype = np.dtype(np.float64)
    on_device = gram_inverse_on(CPU, columns, 300, 40, 7.0, diagonal_weight, dtype)
    lapack = gram_inverse(columns, 300, 40, 7.0, dtype, diagonal_weight=diagonal_weight)
    np.testing.assert_allclose(on_device, lapack, rtol=1e-10, atol=1e-13)
    # and it is the inverse of what it should be: (XᵀX + λI + w diag(XᵀX)) P = I
    x = np.zeros((300, 40))
    x[columns.users, columns.items] = columns.ratings
    gram = x.T @ x
    np.testing.assert_allclose((gram + np.diag(7.0 + diagonal_weight * np.diag(gram))) @ on_device, np.eye(40),
                               atol=1e-9)


def test_a_fit_too_big_for_the_device_is_refused_in_one_line_naming_what_fits():
    gpu = torch.device("cuda:0")  # only named: the check runs before anything touches a device
    free = 4 * 2**30
    with pytest.raises(PngnnError) as info:
        check_device_memory("PN-EASE", 2 * 40_000, 40_000, np.dtype(np.float32), gpu, free=free)
    message = str(info.value)
    need = (2 * 80_000**2 + 2048 * 80_000) * 4 / 2**30  # the Gram and its inverse, and one block of rows
    assert "\n" not in message and f"PN-EASE on 40,000 items needs about {need:.1f} GB on cuda:0" in message
    fits = int(message.split("ease_max_items=")[1].split()[0])
    most = (free / 8) ** 0.5 / 2  # items whose 2 columns' two float32 squares take all that is free
    assert 2 * (2 * fits) ** 2 * 4 <= free and fits >= 0.8 * most  # what it names fits, and is not tiny
    assert "--device cpu" in message
    check_device_memory("EASE", 20_000, 20_000, np.dtype(np.float32), gpu, free=free)  # 3.2 GB: fits


def test_a_ridge_that_is_not_positive_is_refused_on_the_device_path_too():
    with pytest.raises(PngnnError, match="lambda must be > 0"):
        gram_inverse_on(CPU, random_columns(0), 300, 40, 0.0)
