"""Degree-based negative sampling: exclusion of rated items and the sampling distribution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chisquare

from pngnn.core.errors import PngnnError
from pngnn.models import sampling
from pngnn.models.sampling import InverseCdf, NegativeSampler, RatedLookup, degree_distribution


def random_ratings(seed: int, n_users: int = 40, n_items: int = 25, density: float = 0.5):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(mask)
    return users.astype(np.int64), items.astype(np.int64), mask


@pytest.fixture(params=["dense", "sorted"])
def lookup_path(request, monkeypatch):
    if request.param == "sorted":
        monkeypatch.setattr(sampling, "_DENSE_LIMIT", 0)
    return request.param


def test_lookup_contains(lookup_path):
    users, items, mask = random_ratings(0)
    lookup = RatedLookup(users, items, 40, 25)
    assert lookup.dense == (lookup_path == "dense")
    all_u, all_i = np.meshgrid(np.arange(40), np.arange(25), indexing="ij")
    got = lookup.contains(all_u.ravel(), all_i.ravel()).reshape(40, 25)
    np.testing.assert_array_equal(got, mask)


def test_never_returns_a_rated_item(lookup_path):
    users, items, mask = random_ratings(1, density=0.6)
    sampler = NegativeSampler(users, items, 40, 25, exponent=0.75, seed=3)
    assert sampler.lookup.dense == (lookup_path == "dense")
    pair_users = np.repeat(np.arange(40), 50)
    neg = sampler.sample(pair_users, 7)
    assert neg.shape == (40 * 50, 7)
    assert neg.dtype == np.int32
    assert neg.min() >= 0 and neg.max() < 25
    rated = mask[pair_users[:, None], neg]
    assert not rated.any()
    # and the negatives are not trivially constant
    assert np.unique(neg).size > 5


def test_shape_and_determinism():
    users, items, _ = random_ratings(2)
    pair_users = np.array([3, 3, 7, 0, 39])
    a = NegativeSampler(users, items, 40, 25, seed=11).sample(pair_users, 4)
    b = NegativeSampler(users, items, 40, 25, seed=11).sample(pair_users, 4)
    assert a.shape == (5, 4)
    np.testing.assert_array_equal(a, b)
    # an empty batch gives an empty [0, n_neg] array
    assert NegativeSampler(users, items, 40, 25).sample(np.array([], dtype=np.int64), 4).shape == (0, 4)


def test_degree_distribution_formula():
    # item degrees: item0 = 1, item1 = 3, item2 = 0, item3 = 16
    items = np.array([0, 1, 1, 1] + [3] * 16)
    p = degree_distribution(items, 4, 0.75)
    w = np.array([1.0, 3.0**0.75, 0.0, 16.0**0.75])  # 16^0.75 = 8
    np.testing.assert_allclose(p, w / w.sum())
    assert w[3] == pytest.approx(8.0)
    np.testing.assert_allclose(degree_distribution(items, 4, 0.0), [0.25] * 4)
    with pytest.raises(PngnnError):
        degree_distribution(np.array([], dtype=np.int64), 4, 0.75)


def _degree_setup():
    """Users 1..: ratings that give item j the degree j + 1 (items 0..9); user 0 rates nothing."""
    n_items = 10
    items = np.concatenate([np.full(j + 1, j) for j in range(n_items)])
    # spread each item's raters over users 1..10 so no (user, item) pair repeats
    users = np.concatenate([np.arange(1, j + 2) for j in range(n_items)])
    return users, items, n_items


def test_frequencies_follow_degree_power(lookup_path):
    users, items, n_items = _degree_setup()
    sampler = NegativeSampler(users, items, 11, n_items, exponent=0.75, seed=5)
    neg = sampler.sample(np.zeros(2000, dtype=np.int64), 10)  # user 0 rated nothing: no rejection
    observed = np.bincount(neg.ravel(), minlength=n_items)
    # P(j) = (j + 1)^0.75 / sum_k (k + 1)^0.75
    w = np.arange(1, n_items + 1) ** 0.75
    expected = w / w.sum() * neg.size
    assert chisquare(observed, expected).pvalue > 1e-3
    # and it is not uniform: the most popular item is drawn about 10^0.75 = 5.6 times as often as the least
    assert observed[9] / observed[0] == pytest.approx(10**0.75, rel=0.25)


def test_conditional_distribution_excludes_rated_items(lookup_path):
    """A user who rated items 9 and 8 gets negatives from P(j) ~ deg^0.75 renormalised over 0..7."""
    users, items, n_items = _degree_setup()
    users = np.concatenate([users, [0, 0]])
    items = np.concatenate([items, [9, 8]])
    # the extra ratings raise the degrees of items 8 and 9 by one
    deg = np.arange(1, n_items + 1) + (np.arange(n_items) >= 8)
    sampler = NegativeSampler(users, items, 11, n_items, exponent=0.75, seed=6)
    neg = sampler.sample(np.zeros(2000, dtype=np.int64), 10)
    observed = np.bincount(neg.ravel(), minlength=n_items)
    assert observed[8] == 0 and observed[9] == 0
    w = deg[:8] ** 0.75
    assert chisquare(observed[:8], w / w.sum() * neg.size).pvalue > 1e-3


def test_exponent_zero_is_uniform(lookup_path):
    users, items, n_items = _degree_setup()
    sampler = NegativeSampler(users, items, 11, n_items, exponent=0.0, seed=7)
    neg = sampler.sample(np.zeros(2000, dtype=np.int64), 10)
    observed = np.bincount(neg.ravel(), minlength=n_items)
    assert chisquare(observed, np.full(n_items, neg.size / n_items)).pvalue > 1e-3


def test_unrated_items_are_never_drawn_with_positive_exponent():
    # item 2 has no training rating: deg^0.75 = 0
    sampler = NegativeSampler(np.array([1, 1]), np.array([0, 1]), 2, 3, exponent=0.75, seed=0)
    neg = sampler.sample(np.zeros(500, dtype=np.int64), 4)
    assert set(np.unique(neg).tolist()) == {0, 1}


def test_error_when_a_user_rated_every_item(lookup_path):
    # user 0 rated all 5 items; user 1 rated item 0
    users = np.array([0, 0, 0, 0, 0, 1])
    items = np.array([0, 1, 2, 3, 4, 0])
    sampler = NegativeSampler(users, items, 2, 5, exponent=0.75, seed=0)
    with pytest.raises(PngnnError, match="could not draw negatives") as exc:
        sampler.sample(np.array([1, 0]), 3, max_rounds=20)
    assert "3 pairs" in str(exc.value)  # user 0's 3 draws fail, user 1's succeed
    # user 1 alone is fine
    neg = sampler.sample(np.array([1]), 3)
    assert not np.isin(neg, [0]).any()


def test_disliked_sampler_draws_only_the_users_own_disliked_items_uniformly():
    from pngnn.models.sampling import DislikedSampler

    users = np.array([0, 0, 0, 2, 2])
    items = np.array([5, 7, 9, 1, 3])
    sampler = DislikedSampler(users, items, n_users=4, seed=0)
    draws = sampler.sample(np.repeat(np.arange(4), 30_000))
    by_user = draws.reshape(4, -1)
    assert (by_user[1] == -1).all() and (by_user[3] == -1).all()  # no disliked item
    assert set(np.unique(by_user[0])) == {5, 7, 9}
    assert set(np.unique(by_user[2])) == {1, 3}
    # Uniform among the user's items: each of user 0's three within 2% of 1/3.
    freq = np.bincount(by_user[0], minlength=10)[[5, 7, 9]] / by_user.shape[1]
    assert np.allclose(freq, 1 / 3, atol=0.02)


def test_edge_order_visits_every_pair_once():
    from pngnn.models.sampling import EpochPairOrder

    users = np.array([0, 0, 0, 0, 1, 2, 2])
    order = EpochPairOrder(users, 3, "edges").draw(np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(7))


def test_user_order_weighs_every_user_alike_and_their_pairs_alike():
    from pngnn.models.sampling import EpochPairOrder

    # User 0 has 6 pairs, user 1 one, user 2 none, user 3 three (pairs are not sorted by user).
    users = np.array([3, 0, 0, 1, 0, 3, 0, 0, 3, 0])
    pair_order, rng = EpochPairOrder(users, 4, "users"), np.random.default_rng(0)
    order = np.concatenate([pair_order.draw(rng) for _ in range(6_000)])
    assert len(order) == 6_000 * len(users)
    assert order.min() >= 0 and order.max() < len(users)
    # Each user with a pair is drawn a third of the time, whatever their pair count (edges: 6/10, 1/10, 3/10).
    per_user = np.bincount(users[order], minlength=4)
    assert per_user[2] == 0
    assert chisquare(per_user[[0, 1, 3]]).pvalue > 1e-3
    # Within a user, the pairs are equally likely: user 0's six pairs each get 1/6 of user 0's draws.
    of_user0 = np.bincount(order[users[order] == 0], minlength=len(users))[users == 0]
    assert chisquare(of_user0).pvalue > 1e-3


def test_pair_order_of_no_pairs_is_empty_in_both_modes():
    from pngnn.models.sampling import EpochPairOrder

    for mode in ("edges", "users"):
        assert EpochPairOrder(np.array([], dtype=np.int64), 3, mode).draw(np.random.default_rng(0)).size == 0


def test_unknown_pair_sampling_is_rejected_with_the_choices():
    from pngnn.core.config import TrainConfig
    from pngnn.models.sampling import EpochPairOrder

    with pytest.raises(PngnnError, match="choose one of edges, users"):
        EpochPairOrder(np.array([0]), 1, "items")
    with pytest.raises(PngnnError, match="choose one of edges, users"):
        TrainConfig(pair_sampling="items")


def test_inverse_cdf_returns_what_searchsorted_returns_draw_for_draw():
    # Zero-probability items at the start, in a run in the middle and at the end; tiny and large masses.
    probs = np.array([0, 0, 1e-7, 0.3, 0, 0, 0, 2e-6, 0.2, 1e-5, 0.5 - 1.21e-5, 0, 0])
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]
    inverse = InverseCdf(cdf, bits=4)  # 16 slices: most hold several boundaries
    rng = np.random.default_rng(0)
    # Random draws, every cdf value itself (ties go right), slice edges, and the ends of [0, 1).
    u = np.concatenate([rng.random(100_000), cdf[cdf < 1], np.arange(16) / 16, [0.0, np.nextafter(1.0, 0)]])
    np.testing.assert_array_equal(inverse(u), np.searchsorted(cdf, u, side="right"))


def test_negatives_do_not_depend_on_the_slice_size():
    users = np.repeat(np.arange(6), 2)
    items = np.array([0, 1, 2, 3, 4, 5, 0, 6, 1, 7, 3, 8])
    drawn = [NegativeSampler(users, items, 6, 10, seed=4).sample(np.arange(6).repeat(50), 7, chunk=c)
             for c in (1, 64, 1 << 20)]
    np.testing.assert_array_equal(drawn[0], drawn[1])
    np.testing.assert_array_equal(drawn[0], drawn[2])
    assert not RatedLookup(users, items, 6, 10).contains(np.arange(6).repeat(50)[:, None], drawn[0]).any()
