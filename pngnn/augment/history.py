"""A fingerprint of each user's train history, so a later run can tell who changed.

A prompt is built from the user's train ratings; its answer stays valid for a split only while
that history is the one the LLM saw. After new interactions arrive (``pngnn ingest --append``) the
split is redrawn and some users' train parts change: their fingerprints differ from the ones
stored with their prompts (``llm_prompts.history_fp``), and a re-augmentation asks them again.

The fingerprint is order-free (an XOR of per-rating hashes, mixed with the count) and built from
the same portable SplitMix64 hash as the prompts, so it is the same on every machine and DuckDB
version.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pngnn.augment.prompts import _splitmix64, hash_keys
from pngnn.data.store import Store

FINGERPRINT_SALT = 0x5EED_F1A9


def fingerprints(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, user_ids: np.ndarray) -> np.ndarray:
    """int64 fingerprint of each of ``user_ids`` over its (item, rating) pairs among the given rows;
    a user without rows gets the fingerprint of an empty history."""
    user_ids = np.asarray(user_ids, dtype=np.int64)
    acc = np.zeros(len(user_ids), dtype=np.uint64)
    count = np.zeros(len(user_ids), dtype=np.uint64)
    if len(users):
        rating_bits = np.asarray(ratings, dtype=np.float32).view(np.uint32).astype(np.uint64)
        h = hash_keys(np.asarray(users), np.asarray(items), FINGERPRINT_SALT) ^ _splitmix64(rating_bits)
        order = np.argsort(users, kind="stable")
        sorted_users, h = np.asarray(users, dtype=np.int64)[order], h[order]
        starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
        present = sorted_users[starts]
        pos = np.searchsorted(user_ids, present)  # user_ids is sorted (callers pass the sorted ids)
        known = (pos < len(user_ids)) & (user_ids[np.minimum(pos, len(user_ids) - 1)] == present)
        acc[pos[known]] = np.bitwise_xor.reduceat(h, starts)[known]
        count[pos[known]] = np.diff(np.r_[starts, len(sorted_users)])[known].astype(np.uint64)
    mixed = hash_keys(user_ids, (acc ^ _splitmix64(count)).view(np.int64), FINGERPRINT_SALT)
    return mixed.view(np.int64)


def train_fingerprints(store: Store, dataset: str, seed: int) -> pl.DataFrame:
    """(user_id, history_fp, train_ratings) of every user of ``dataset`` for split ``seed``'s train part."""
    users = store.query_sql("SELECT user_id FROM users WHERE dataset = $dataset AND user_idx IS NOT NULL "
                            "ORDER BY user_id", dataset=dataset)["user_id"].to_numpy().astype(np.int64)
    train = store.query_sql("SELECT user_id, item_id, rating FROM splits WHERE dataset = $dataset AND seed = $seed "
                            "AND part = 'train'", dataset=dataset, seed=seed)
    u = train["user_id"].to_numpy().astype(np.int64)
    fp = fingerprints(u, train["item_id"].to_numpy().astype(np.int64), train["rating"].to_numpy(), users)
    counts = np.bincount(np.searchsorted(users, u), minlength=len(users)) if len(u) else np.zeros(len(users), int)
    return pl.DataFrame({"user_id": pl.Series(users, dtype=pl.Int32), "history_fp": pl.Series(fp, dtype=pl.Int64),
                         "train_ratings": pl.Series(counts, dtype=pl.Int64)})
