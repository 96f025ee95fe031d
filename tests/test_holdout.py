"""Promotion's holdout measure (issue 29 item 5e) on cases worked by hand, and the plan of who a
re-augmentation asks (item 5b) on statuses written out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pngnn.augment.history import fingerprints
from pngnn.augment.incremental import plan_prompts
from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions, SplitData
from pngnn.models.factors import CsrRows, ScoreFactors
from pngnn.tracking.holdout import Holdout, holdout_recall
from pngnn.tracking.serving import Recommender


def pairs(rows: list[tuple[int, int, float]]) -> Interactions:
    u, i, r = zip(*rows, strict=True) if rows else ((), (), ())
    return Interactions(np.array(u, np.int64), np.array(i, np.int64), np.array(r, np.float32))


def recommender(scores: np.ndarray, user_ids: list, item_ids: list) -> Recommender:
    """Scores given directly: identity user vectors times the score matrix."""
    n_users = scores.shape[0]
    factors = ScoreFactors(np.eye(n_users, dtype=np.float32), np.ascontiguousarray(scores, dtype=np.float32))
    seen = CsrRows.from_pairs(np.array([], np.int64), np.array([], np.int64), n_users, scores.shape[1])
    return Recommender(factors, seen, np.array(user_ids, dtype=object), np.array(item_ids, dtype=object),
                       np.full(len(item_ids), None, dtype=object))


def holdout(train, valid, n_users=3, n_items=25) -> Holdout:
    split = SplitData("shop", 1, n_users, n_items, pairs(train), pairs(valid), pairs([]), like_threshold=6.0)
    users = pd.DataFrame({"user_idx": range(n_users), "user_id": [f"u{k}" for k in range(n_users)]})
    items = pd.DataFrame({"item_idx": range(n_items), "item_id": [f"i{k}" for k in range(n_items)]})
    return Holdout.of(split, users, items)


def test_recall_at_20_masks_train_items_counts_only_liked_validation_items_and_skips_unknown_users():
    n_items = 25
    # user 0: items ranked 0 > 1 > ... > 24; item 0 is in train (masked), so the top 20 are items 1..20.
    # validation likes 3 and 22 (one in the top 20, one below) -> recall 1/2; item 5 rated 2 is no like.
    # user 1: validation like 24 only, ranked last of 24 unmasked -> 0/1.
    # user 2: the model does not know it -> NaN, whatever its validation.
    scores = np.tile(-np.arange(n_items, dtype=np.float32), (2, 1))
    model = recommender(scores, ["u0", "u1"], [f"i{k}" for k in range(n_items)])
    data = holdout(train=[(0, 0, 8.0), (1, 3, 9.0)], valid=[(0, 3, 7.0), (0, 22, 9.0), (0, 5, 2.0), (1, 24, 8.0),
                                                             (2, 1, 9.0)])
    users, recall = holdout_recall(model, data)
    assert users.tolist() == [0, 1, 2]
    assert recall[0] == pytest.approx(0.5) and recall[1] == 0.0 and np.isnan(recall[2])


def test_an_item_the_model_never_saw_cannot_be_recommended_but_still_counts_as_a_like():
    # the model knows items i0..i9 only (an older model); the user's validation likes i2 and i15 (new)
    model = recommender(-np.arange(10, dtype=np.float32)[None, :], ["u0"], [f"i{k}" for k in range(10)])
    _, recall = holdout_recall(model, holdout(train=[], valid=[(0, 2, 9.0), (0, 15, 9.0)], n_users=1))
    assert recall.tolist() == [0.5]


def test_a_split_without_validation_likes_is_one_line():
    model = recommender(np.zeros((1, 25), np.float32), ["u0"], [f"i{k}" for k in range(25)])
    with pytest.raises(PngnnError, match="has no validation likes"):
        holdout_recall(model, holdout(train=[(0, 1, 9.0)], valid=[(0, 2, 1.0)], n_users=1))


def test_the_plan_asks_new_and_changed_users_sparsest_first_within_the_budget():
    status = pl.DataFrame({"user_id": [1, 2, 3, 4, 5, 6], "train_ratings": [9, 2, 7, 1, 5, 3],
                           "status": ["unchanged", "new", "changed", "unchanged", "new", "changed"]})
    plan = plan_prompts(status, budget=3)
    assert plan.users == [2, 6, 5]  # eligible 2, 3, 5, 6 by train ratings 2 < 3 < 5 < 7; the budget stops at 3
    assert (plan.new, plan.changed, plan.unchanged, plan.waiting) == (2, 2, 2, 1)
    assert plan_prompts(status, budget=0).users == [] and plan_prompts(status, budget=0).waiting == 4
    with pytest.raises(PngnnError, match="budget must be 0 or more"):
        plan_prompts(status, budget=-1)


def test_a_fingerprint_changes_with_any_rating_and_not_with_row_order():
    users, items = np.array([1, 1, 2, 2]), np.array([10, 11, 10, 12])
    ratings = np.array([4.0, 2.0, 5.0, 1.0], np.float32)
    base = fingerprints(users, items, ratings, np.array([1, 2, 3]))
    flipped = fingerprints(users[::-1], items[::-1], ratings[::-1], np.array([1, 2, 3]))
    assert (base == flipped).all()
    other = ratings.copy()
    other[1] = 3.0  # user 1 re-rated an item
    changed = fingerprints(users, items, other, np.array([1, 2, 3]))
    assert changed[0] != base[0] and (changed[1:] == base[1:]).all()
    fewer = fingerprints(users[:3], items[:3], ratings[:3], np.array([1, 2, 3]))  # user 2 lost a rating
    assert fewer[1] != base[1] and fewer[0] == base[0]
