"""The closed forms' big matrix (issue 30 item 2): the Gram built densely in blocks, inverted in
place, PN-EASE's weights made without the two [2n, n] blocks, and a fit refused before any
allocation when the machine cannot hold it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions
from pngnn.models import gram as gram_module
from pngnn.models.gram import check_memory, dense_gram, fit_bytes, gram_inverse, invert_in_place, lower_gram
from pngnn.models.linear import ease_weights, pn_ease_weights


def random_interactions(n_users: int, n_cols: int, nnz: int, seed: int) -> Interactions:
    rng = np.random.default_rng(seed)
    pairs = np.unique(rng.integers(0, [n_users, n_cols], size=(nnz, 2)), axis=0)
    return Interactions(pairs[:, 0], pairs[:, 1], rng.uniform(0.5, 2.0, len(pairs)).astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_blocked_gram_is_the_sparse_product(monkeypatch, seed):
    monkeypatch.setattr(gram_module, "BLOCK", 7)  # many blocks, the last one short
    x = random_interactions(50, 30, 400, seed)
    dense = dense_gram(x, 50, 30, np.dtype(np.float64))
    m = sp.csr_matrix((x.ratings.astype(np.float64), (x.users, x.items)), shape=(50, 30))
    np.testing.assert_allclose(dense, (m.T @ m).toarray(), rtol=1e-12)


@pytest.mark.parametrize(("dtype", "tol"), [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_the_inverse_is_written_over_the_gram_and_is_the_inverse(monkeypatch, dtype, tol):
    monkeypatch.setattr(gram_module, "SYMMETRIZE_BLOCK", 8)  # mirror in several blocks
    x = random_interactions(200, 37, 1_500, 3)
    g = dense_gram(x, 200, 37, np.dtype(dtype))
    expected = np.linalg.inv(g.astype(np.float64) + 5.0 * np.eye(37))
    p = invert_in_place(g, 5.0)
    assert np.shares_memory(p, g) and p.dtype == dtype and p.flags.c_contiguous
    np.testing.assert_allclose(p, p.T, rtol=0, atol=0)  # exactly symmetric
    np.testing.assert_allclose(p, expected, rtol=tol, atol=tol * np.abs(expected).max())


def test_one_triangle_is_enough_from_gram_to_inverse(monkeypatch):
    """The fit accumulates and inverts one triangle only (BLAS syrk, LAPACK potrf/potri): the other
    stays zero until the inverse is mirrored, and the result is the full inverse."""
    monkeypatch.setattr(gram_module, "BLOCK", 16)
    x = random_interactions(120, 25, 900, 7)
    lower = lower_gram(x, 120, 25, np.dtype(np.float64))
    assert not np.triu(lower.T, 1).any() and np.tril(lower.T).any()
    m = sp.csr_matrix((x.ratings.astype(np.float64), (x.users, x.items)), shape=(120, 25))
    expected = np.linalg.inv((m.T @ m).toarray() + 4.0 * np.eye(25))
    np.testing.assert_allclose(gram_inverse(x, 120, 25, 4.0, np.dtype(np.float64)), expected, rtol=1e-9, atol=1e-12)


def test_a_singular_gram_is_one_line_naming_the_penalty():
    g = np.zeros((4, 4))
    with pytest.raises(PngnnError, match=r"not positive definite .* raise the ridge penalty ease_lambda"):
        invert_in_place(g, -1.0)


def test_pn_ease_weights_are_the_two_target_blocks_combined():
    """The blockwise form against the formula with both [2n, n] blocks made whole (torch, float64)."""
    rng = np.random.default_rng(4)
    n = 9
    a = rng.normal(size=(40, 2 * n))
    p = np.linalg.inv(a.T @ a + 3.0 * np.eye(2 * n))
    k = 0.6
    t = torch.from_numpy(p.copy())
    idx = torch.arange(n)
    aa, c, d = t[idx, idx], t[idx, n + idx], t[n + idx, n + idx]
    det = aa * d - c * c
    inv_ll, inv_ld, inv_dd = d / det, -c / det, aa / det
    b_liked = -(t[:, :n] * inv_ll + t[:, n:] * inv_ld)
    b_disliked = -(t[:, :n] * inv_ld + t[:, n:] * inv_dd)
    b_liked[idx, idx] += 1.0
    b_disliked[n + idx, idx] += 1.0
    np.testing.assert_allclose(pn_ease_weights(p, n, k), (b_liked + k * b_disliked).numpy(), rtol=1e-10, atol=1e-12)


def test_ease_weights_are_made_in_place():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(30, 6))
    p = np.linalg.inv(a.T @ a + np.eye(6)).astype(np.float32)
    expected = -p / np.diag(p)
    np.fill_diagonal(expected, 0.0)
    b = ease_weights(p)
    assert np.shares_memory(b, p)
    np.testing.assert_allclose(b, expected, rtol=1e-6)


def test_a_fit_too_big_for_the_free_memory_is_refused_before_any_allocation():
    need = fit_bytes(26_744, 26_744, np.dtype(np.float32))
    assert need == 26_744**2 * 4 + gram_module.BLOCK * 26_744 * 4  # EASE's weights are made in place
    with pytest.raises(PngnnError) as info:
        check_memory("EASE", 26_744, 26_744, np.dtype(np.float32), available=2 * 2**30)
    message = str(info.value)
    assert "EASE on 26,744 items needs about 2.9 GB" in message and "2.0 GB is free" in message
    assert "set ease_max_items=" in message and "\n" not in message
    pn = fit_bytes(2 * 26_744, 26_744, np.dtype(np.float32))
    assert pn == (2 * 26_744) ** 2 * 4 + 2 * 26_744 * 26_744 * 4 + gram_module.BLOCK * 2 * 26_744 * 4
    check_memory("EASE", 26_744, 26_744, np.dtype(np.float32), available=need)  # exactly enough: fits


def test_ease_max_items_fits_the_most_rated_items_and_never_recommends_the_rest(tmp_path):
    from pngnn.core.config import TrainConfig
    from pngnn.data.split import SplitData
    from pngnn.models.linear import fit_ease, fit_pn_ease
    from pngnn.training.methods import train_method

    rng = np.random.default_rng(6)
    n_users, n_items = 60, 25
    pairs = np.unique(np.c_[rng.integers(0, n_users, 700), rng.zipf(1.6, 700) % n_items], axis=0)
    train = Interactions(pairs[:, 0], pairs[:, 1], rng.integers(1, 6, len(pairs)).astype(np.float32))
    counts = np.bincount(train.items, minlength=n_items)
    kept = np.sort(np.argsort(-counts, kind="stable")[:10])
    users = torch.arange(n_users)
    for fit in (lambda **k: fit_ease(train, n_users, n_items, 20.0, **k),
                lambda **k: fit_pn_ease(train, n_users, n_items, 20.0, **k)):
        pruned = fit(max_items=10)
        scores = pruned.full_sort_predict(users).numpy()
        assert np.isneginf(np.delete(scores, kept, axis=1)).all()
        assert np.isfinite(scores[:, kept]).all()
        factors = pruned.score_factors()  # what the registered model serves: the kept columns only
        assert factors.item_weights.shape[1] == 10 and factors.n_items == n_items
        served = factors.scores(np.arange(n_users))
        np.testing.assert_allclose(served, scores, rtol=1e-5, atol=1e-5)
        from pngnn.models.factors import CsrRows
        from pngnn.tracking.serving import Recommender

        seen = CsrRows(np.zeros(n_users + 1, np.int64), np.zeros(0, np.int64), None, n_items)
        saved = Recommender(factors, seen, np.arange(n_users), np.arange(n_items),
                            np.array([None] * n_items, object)).save(tmp_path / f"model{pruned.n_inputs}")
        loaded = Recommender.load(saved).factors  # stored compact, loaded as it was
        assert loaded.item_weights.shape[1] == 10 and loaded.n_items == n_items
        np.testing.assert_allclose(loaded.scores(np.arange(n_users)), scores, rtol=1e-5, atol=1e-5)
        # the kept columns are the model fitted on those items' ratings alone
        mask = np.isin(train.items, kept)
        remap = np.searchsorted(kept, train.items[mask])
        alone = Interactions(train.users[mask], remap, train.ratings[mask])
        small = (fit_ease(alone, n_users, 10, 20.0) if pruned.n_inputs == 10 else
                 fit_pn_ease(alone, n_users, 10, 20.0))
        np.testing.assert_allclose(scores[:, kept], small.full_sort_predict(users).numpy(), rtol=1e-5, atol=1e-5)
    empty = Interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    split = SplitData("toy", 1, n_users, n_items, train, empty, empty)
    model = train_method("ease", split, TrainConfig(ease_max_items=10, ease_lambda=20.0)).model
    assert model.weights.shape == (10, 10) and model.n_items == n_items


def test_the_refusal_names_a_setting_that_then_fits():
    free = 2 * 2**30
    for method, n_cols, n_items in (("EASE", 26_744, 26_744), ("PN-EASE", 2 * 26_744, 26_744)):
        with pytest.raises(PngnnError) as info:
            check_memory(method, n_cols, n_items, np.dtype(np.float32), available=free)
        fits = int(str(info.value).split("ease_max_items=")[1].split(" ")[0])
        cols = fits if method == "EASE" else 2 * fits
        check_memory(method, cols, fits, np.dtype(np.float32), available=free)  # no error
