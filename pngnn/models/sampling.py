"""Negative sampling for a whole epoch in one vectorised call.

Negatives j for a pair (u, i) are drawn from P(j) ~ deg(j)^exponent over training
degrees (exponent 0.75 as in word2vec and the PN-GNN paper; 0 gives uniform), and
never among the items u rated in train. Rejected draws are redrawn in vectorised
rounds until none is left, so the result is an exact sample from the conditional
distribution, not an approximation.
"""

from __future__ import annotations

import numpy as np

from pngnn.core.config import PAIR_SAMPLINGS
from pngnn.core.errors import PngnnError

# Above this many user x item cells the rated-set lookup switches from a dense bitmap to
# binary search over sorted keys (memory over speed). The bitmap is one byte a cell, so the
# limit is its largest size: 64 MiB, which keeps ML-100K and ML-1M (22M cells) on the fast
# bitmap and never builds one for ML-10M (746M cells) or ML-20M (3.7G cells), where the keys
# take 8 bytes per train rating instead.
_DENSE_LIMIT = 1 << 26


class RatedLookup:
    """Membership test 'did user u rate item j in train?' for arrays of (u, j).

    Never users x items on a large catalogue: a bitmap only up to ``_DENSE_LIMIT`` cells,
    above that the sorted keys u * n_items + j (one int64 per rated pair)."""

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> None:
        self.n_items = n_items
        self.dense = n_users * n_items <= _DENSE_LIMIT
        if self.dense:
            self.bitmap = np.zeros((n_users, n_items), dtype=bool)
            self.bitmap[users, items] = True
        else:
            self.keys = np.unique(users.astype(np.int64) * n_items + items)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if self.dense:
            return self.bitmap[users, items]
        keys = users.astype(np.int64) * self.n_items + items
        pos = np.searchsorted(self.keys, keys)
        pos[pos == len(self.keys)] = 0
        return self.keys[pos] == keys


def degree_distribution(items: np.ndarray, n_items: int, exponent: float) -> np.ndarray:
    """P(j) ~ deg(j)^exponent over training degrees; exponent 0 is uniform over all items."""
    if exponent == 0:
        return np.full(n_items, 1.0 / n_items)
    deg = np.bincount(items, minlength=n_items).astype(np.float64)
    weights = deg**exponent
    total = weights.sum()
    if total == 0:
        raise PngnnError("cannot sample negatives: no item has a training rating; check the split")
    return weights / total


class InverseCdf:
    """Item index for uniform draws u: the first j with cdf[j] > u (``np.searchsorted(cdf, u, "right")``).

    Why not ``searchsorted`` itself: an epoch draws tens of millions of negatives and a binary
    search per draw was half of an epoch's sampling. A guide table (the classic index-table
    method for discrete inverse-CDF sampling) maps each of ``2**bits`` equal slices of [0, 1)
    to the first candidate index; a few vectorised passes step the draws whose slice holds more
    than one boundary forward. The result is the same index searchsorted returns, draw for draw.
    """

    def __init__(self, cdf: np.ndarray, bits: int = 16) -> None:
        self.cdf, self.slices = cdf, 1 << bits
        self.guide = np.searchsorted(cdf, np.arange(self.slices) / self.slices, side="right").astype(np.int32)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        idx = self.guide[(u * self.slices).astype(np.intp)]
        late = np.flatnonzero(self.cdf[idx] <= u)
        while late.size:
            idx[late] += 1
            late = late[self.cdf[idx[late]] <= u[late]]
        return idx


class NegativeSampler:
    """Draws ``n_neg`` negatives per training pair for a whole epoch at once."""

    def __init__(
        self,
        rated_users: np.ndarray,
        rated_items: np.ndarray,
        n_users: int,
        n_items: int,
        exponent: float = 0.75,
        seed: int = 0,
    ) -> None:
        self.lookup = RatedLookup(rated_users, rated_items, n_users, n_items)
        self.probs = degree_distribution(rated_items, n_items, exponent)
        self.cdf = np.cumsum(self.probs)
        self.cdf /= self.cdf[-1]
        self.inverse_cdf = InverseCdf(self.cdf)
        self.rng = np.random.default_rng(seed)
        self.n_items = n_items

    def _draw(self, size: int) -> np.ndarray:
        return np.minimum(self.inverse_cdf(self.rng.random(size)), self.n_items - 1).astype(np.int32)

    def sample(self, users: np.ndarray, n_neg: int, max_rounds: int = 100, chunk: int = 1 << 20) -> np.ndarray:
        """Return an int32 array [len(users), n_neg] of items each user never rated in train.

        Memory: the result (4 bytes x pairs x n_neg: the epoch's negatives, which training
        indexes per batch) plus one slice's temporaries; nothing of size users x items.

        The first draws go in slices of about ``chunk`` (the random stream is the same as one
        call's): an epoch's worth at once is hundreds of MB of temporaries that the allocator
        hands back to the system and faults in again every epoch."""
        neg = np.empty(len(users) * n_neg, dtype=np.int32)
        rows = max(1, chunk // max(n_neg, 1))
        bad_parts = []
        for start in range(0, len(users), rows):
            part = users[start : start + rows]
            draws = self._draw(len(part) * n_neg)
            neg[start * n_neg : (start + len(part)) * n_neg] = draws
            rated = self.lookup.contains(part[:, None], draws.reshape(len(part), n_neg))  # row-wise broadcast
            bad_parts.append(start * n_neg + np.flatnonzero(rated))
        bad = np.concatenate(bad_parts) if bad_parts else np.zeros(0, dtype=np.int64)
        for _ in range(max_rounds):
            if bad.size == 0:
                break
            neg[bad] = self._draw(bad.size)
            bad = bad[self.lookup.contains(users[bad // n_neg], neg[bad])]
        if bad.size:
            raise PngnnError(
                f"could not draw negatives for {bad.size} pairs after {max_rounds} rounds: some users rated "
                "almost every sampleable item; lower n_neg or use uniform sampling (exponent 0)"
            )
        return neg.reshape(len(users), n_neg)


class UserRows:
    """Rows grouped by user (CSR), for drawing one of a user's rows uniformly, vectorised.

    Built once from the rows' user column; each ``draw`` is a few array operations over the
    whole request, never a per-user Python loop. Shared by the disliked-item sampler and the
    user-balanced pair order.
    """

    def __init__(self, users: np.ndarray, n_users: int) -> None:
        self.order = np.argsort(users, kind="stable")
        self.counts = np.bincount(users, minlength=n_users)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def draw(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """int64 [len(users)]: the index of a uniformly drawn row of each user, -1 where the user has none."""
        counts = self.counts[users]
        offset = np.floor(rng.random(len(users)) * counts).astype(np.int64)
        has = counts > 0
        out = np.full(len(users), -1, dtype=np.int64)
        out[has] = self.order[self.starts[users[has]] + offset[has]]
        return out


class DislikedSampler:
    """One disliked item k per (user) draw, uniformly among the user's negative-graph items.

    The ``graded`` and ``weighted`` Dual-BPR readings pair a liked item with an item the *same* user
    rated at or below the threshold; users without one get -1.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, seed: int = 0) -> None:
        self.rows = UserRows(users, n_users)
        self.items = items.astype(np.int64)
        self.rng = np.random.default_rng(seed)

    def sample(self, users: np.ndarray) -> np.ndarray:
        """int64 [len(users)]: a disliked item of each user, or -1 when the user has none."""
        rows = self.rows.draw(users, self.rng)
        out = np.full(len(users), -1, dtype=np.int64)
        has = rows >= 0
        out[has] = self.items[rows[has]]
        return out


class EpochPairOrder:
    """Which training pairs an epoch visits, in order: ``len(pair_users)`` indices per epoch.

    ``"edges"``: a random permutation, every pair once; a user weighs in proportion to how
    many pairs they have, so heavy raters dominate the gradient. ``"users"``: each draw picks
    a user uniformly among those with a pair, then one of that user's pairs uniformly (with
    replacement), as LightGCN's and NGCF's reference samplers do; every user weighs the same,
    which is what the per-user means of precision and recall reward. The per-user index is
    built once, not every epoch.
    """

    def __init__(self, pair_users: np.ndarray, n_users: int, mode: str) -> None:
        if mode not in PAIR_SAMPLINGS:
            raise PngnnError(f"unknown pair sampling '{mode}'; choose one of {', '.join(PAIR_SAMPLINGS)}")
        self.mode, self.n_pairs = mode, len(pair_users)
        if mode == "users":
            self.rows = UserRows(pair_users, n_users)
            self.active = np.flatnonzero(self.rows.counts)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """int64 [n_pairs]: indices into the pairs for one epoch."""
        if self.mode == "edges":
            return rng.permutation(self.n_pairs)
        if self.n_pairs == 0:
            return np.zeros(0, dtype=np.int64)
        users = self.active[rng.integers(0, len(self.active), size=self.n_pairs)]
        return self.rows.draw(users, rng)
