"""Metrics by segment: where a method gains or loses, not only how much on average.

The paper's problem is sparsity, so an average over all users hides what matters: a change that
helps the users with few ratings and the rarely rated items can vanish in the mean. Two views:

* **users by activity**: the evaluated users ordered by their number of train ratings (ties by
  user index, so every bucket has a fixed, reproducible membership), cut into quartiles
  ``users_q1`` (the sparsest quarter) .. ``users_q4``, and ``users_sparsest10`` (the sparsest 10%);
  each bucket gets the usual P/R/NDCG@K over its users.
* **long-tail items**: the items outside the top 20% by train degree; ``long_tail`` holds
  recall@K counted on those items only (hits among the user's relevant long-tail test items, over
  the users that have one), the share of the tail a method actually reaches.

Everything is computed from the one ranked list per user that the overall metrics use: no second
scoring pass.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pngnn.evaluation.metrics import ranking_metrics

USER_QUARTILES = ("users_q1", "users_q2", "users_q3", "users_q4")
SPARSEST = "users_sparsest10"
LONG_TAIL = "long_tail"
SEGMENTS = (*USER_QUARTILES, SPARSEST, LONG_TAIL)
HEAD_SHARE = 0.2  # the popular head: the top 20% of items by train degree
SPARSEST_SHARE = 0.1


def activity_order(users: np.ndarray, user_degree: np.ndarray) -> np.ndarray:
    """Positions of ``users`` from the fewest train ratings to the most (ties: lower user index first)."""
    return np.lexsort((users, user_degree[users]))


def user_buckets(users: np.ndarray, user_degree: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks over ``users``: the four activity quartiles and the sparsest 10%."""
    order = activity_order(users, user_degree)
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users))
    quartile = rank * 4 // max(len(users), 1)
    buckets = {name: quartile == q for q, name in enumerate(USER_QUARTILES)}
    buckets[SPARSEST] = rank < max(1, int(np.ceil(SPARSEST_SHARE * len(users))))
    return buckets


def long_tail_items(item_degree: np.ndarray) -> np.ndarray:
    """Boolean mask over items: outside the top ``HEAD_SHARE`` by train degree (ties: lower index in
    the head)."""
    n = len(item_degree)
    head = np.lexsort((np.arange(n), -item_degree))[: int(np.ceil(HEAD_SHARE * n))]
    tail = np.ones(n, dtype=bool)
    tail[head] = False
    return tail


def segment_metrics(users: np.ndarray, top: np.ndarray, hits: np.ndarray, n_relevant: np.ndarray,
                    truth_users: np.ndarray, truth_items: np.ndarray, user_degree: np.ndarray,
                    item_degree: np.ndarray, ks: Iterable[int]) -> dict[str, dict[str, float]]:
    """Per-segment metrics of ranked lists ``top`` [U, K] with ``hits`` [U, K] for ``users`` [U].

    ``truth_users`` / ``truth_items``: every relevant test pair; ``user_degree`` / ``item_degree``:
    train ratings per user and per item. A segment with no user is left out."""
    ks = sorted(ks)
    out: dict[str, dict[str, float]] = {}
    for name, mask in user_buckets(users, user_degree).items():
        if mask.any():
            out[name] = ranking_metrics(hits[mask], n_relevant[mask], ks)
            out[name]["n_users"] = float(mask.sum())
    tail = long_tail_items(item_degree)
    row_of = np.full(int(max(users.max(initial=0), truth_users.max(initial=0))) + 1, -1, dtype=np.int64)
    row_of[users] = np.arange(len(users))
    keep = tail[truth_items] & (row_of[truth_users] >= 0)
    tail_relevant = np.bincount(row_of[truth_users[keep]], minlength=len(users))
    reached = tail_relevant > 0
    if reached.any():
        tail_hits = hits & tail[top]
        out[LONG_TAIL] = {f"recall@{k}": float((tail_hits[reached, :k].sum(1) / tail_relevant[reached]).mean())
                          for k in ks}
        out[LONG_TAIL]["n_users"] = float(reached.sum())
    return out
