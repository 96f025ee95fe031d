"""How a split assigns each rating to train, validation or test: the split protocols.

``random`` (the default, the paper's protocol): a seeded permutation, ``split.draw_parts``.
Right for reproducing the paper; on a real log it trains on the future and tests on the past.

``temporal``: one global time cutoff. Test is every interaction after the time by which
``1 - test_fraction`` of the interactions had happened, so no test interaction precedes any train
one; the validation part is, the same way, the latest ``valid_fraction`` of train. Ties at a
cutoff stay on the earlier side, so the parts can be a little smaller than their fractions. The
offline analogue of deploying a model trained up to a date.

``last``: each user's last ``last_n`` interactions by time are their test part (leave-last-out),
and the ``last_n`` before those their validation part. A user with no more than ``last_n``
interactions keeps them all in train (no part of a user is ever emptied), and the validation
carve-out likewise leaves at least one train interaction per user. Ties in time are broken by
item id, so the split is deterministic.

Both time protocols ignore the seed: the seed only names the split in the store.
"""

from __future__ import annotations

import numpy as np

from pngnn.core.config import SPLIT_PROTOCOLS, SplitProtocol
from pngnn.core.errors import PngnnError


def check_protocol(protocol: str, last_n: int = 1) -> SplitProtocol:
    if protocol not in SPLIT_PROTOCOLS:
        raise PngnnError(f"unknown split protocol '{protocol}'; choose one of {', '.join(SPLIT_PROTOCOLS)} "
                         "(random is the paper's)")
    if last_n < 1:
        raise PngnnError(f"--last-n {last_n}: each user's test part must hold at least one interaction; use 1 or more")
    return protocol  # type: ignore[return-value]


def _check_times(ts: np.ndarray, protocol: str) -> np.ndarray:
    ts = np.asarray(ts)
    if ts.dtype == object or np.isnan(ts.astype(np.float64)).any():
        raise PngnnError(f"the {protocol} split needs a time for every interaction and some have none; ingest the "
                         "data with a time column (--columns time=...) or use --split random")
    return ts.astype(np.int64)


def temporal_parts(ts: np.ndarray, test_fraction: float, valid_fraction: float) -> np.ndarray:
    """'train' / 'valid' / 'test' per interaction, by one global time cutoff for each part."""
    times = _check_times(ts, "temporal")
    parts = np.full(len(times), "train", dtype=object)
    test_cut = _cutoff(times, test_fraction)
    parts[times > test_cut] = "test"
    if valid_fraction > 0:
        train = times <= test_cut
        valid_cut = _cutoff(times[train], valid_fraction)
        parts[train & (times > valid_cut)] = "valid"
    return parts


def _cutoff(times: np.ndarray, fraction: float) -> int:
    """The time by which ``1 - fraction`` of ``times`` had happened (what comes after is held out)."""
    keep = len(times) - round(len(times) * fraction)
    return int(np.sort(times)[max(keep, 1) - 1])


def last_parts(users: np.ndarray, items: np.ndarray, ts: np.ndarray, last_n: int, valid: bool) -> np.ndarray:
    """'train' / 'valid' / 'test' per interaction: each user's latest ``last_n`` are test, the
    ``last_n`` before them validation (when ``valid``); users too small to spare them keep train."""
    times = _check_times(ts, "last")
    users = np.asarray(users, dtype=np.int64)
    order = np.lexsort((-np.asarray(items, dtype=np.int64), -times, users))  # per user, newest first
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, sizes)  # 0 = the user's newest interaction
    size = np.repeat(sizes, sizes)
    held = np.full(len(users), "train", dtype=object)
    held[(rank < last_n) & (size > last_n)] = "test"
    if valid:
        held[(rank >= last_n) & (rank < 2 * last_n) & (size > 2 * last_n)] = "valid"
    parts = np.empty(len(users), dtype=object)
    parts[order] = held
    return parts
