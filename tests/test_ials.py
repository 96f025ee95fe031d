"""iALS through the `implicit` library: factors that rank a held-out co-watched item first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pngnn.data.split import Interactions
from pngnn.models.factorization import EmbeddingModel, fit_ials


def two_communities(seed: int) -> tuple[Interactions, int]:
    """Users 0-9 watch items 0-4, users 10-19 items 5-9, each a random 4 of their 5 (rating 5).
    Returns the ratings and the item that user 0 has not watched in their community."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    held_out = -1
    for u in range(20):
        block = np.arange(5) + (0 if u < 10 else 5)
        skip = rng.integers(5)
        if u == 0:
            held_out = int(block[skip])
        for i in np.delete(block, skip):
            users.append(u)
            items.append(i)
    n = len(users)
    return Interactions(np.array(users, np.int64), np.array(items, np.int64), np.full(n, 5.0, np.float32)), held_out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ials_ranks_the_held_out_co_watched_item_first(seed):
    train, held_out = two_communities(seed)
    model = fit_ials(train, 20, 10, factors=4, reg=0.01, alpha=10.0, iterations=20, seed=seed, threads=1)
    scores = model.full_sort_predict(torch.tensor([0]))[0].clone()
    scores[torch.from_numpy(train.items[train.users == 0])] = -torch.inf  # seen items are masked at ranking
    assert int(torch.argmax(scores)) == held_out
    assert isinstance(model, EmbeddingModel) and model.user_factors.shape == (20, 4)


def test_ials_on_liked_ratings_only_ignores_the_disliked_ones():
    train, _ = two_communities(0)
    # A disliked rating of an item of the other community changes nothing when only liked ones count.
    extra = Interactions(np.array([0], np.int64), np.array([7], np.int64), np.array([1.0], np.float32))
    base = fit_ials(train, 20, 10, factors=4, reg=0.01, alpha=10.0, iterations=10, ratings="liked", seed=0, threads=1)
    more = fit_ials(train.concat(extra), 20, 10, factors=4, reg=0.01, alpha=10.0, iterations=10, ratings="liked",
                    seed=0, threads=1)
    torch.testing.assert_close(base.user_factors, more.user_factors)
    every = fit_ials(train.concat(extra), 20, 10, factors=4, reg=0.01, alpha=10.0, iterations=10, ratings="all",
                     seed=0, threads=1)
    assert not torch.allclose(base.user_factors, every.user_factors)
