"""Top-K ranking metrics as pure functions over plain arrays.

Inputs are a boolean hit matrix ``hits[u, r]`` (is the item at rank r of user u's list
relevant?), ranks in order, and ``n_relevant[u]`` (how many relevant test items user u
has). Users with no relevant item must be dropped before (they have no recall).

    Precision@K = |hits in top K| / K
    Recall@K    = |hits in top K| / n_relevant
    NDCG@K      = DCG@K / IDCG@K,  DCG = sum_r hit_r / log2(r + 2),
                  IDCG = sum_{r < min(K, n_relevant)} 1 / log2(r + 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def _check(hits: np.ndarray, k: int) -> np.ndarray:
    if k < 1 or k > hits.shape[1]:
        raise ValueError(f"k={k} must be between 1 and the ranked list length {hits.shape[1]}")
    return hits[:, :k].astype(np.float64)


def precision_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Per-user precision@k."""
    return _check(hits, k).sum(1) / k


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user recall@k."""
    return _check(hits, k).sum(1) / n_relevant


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k with binary relevance."""
    h = _check(hits, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = h @ discounts
    ideal_len = np.minimum(n_relevant, k).astype(np.int64)
    idcg = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_len]
    return dcg / idcg


def per_user_metrics(hits: np.ndarray, n_relevant: np.ndarray, ks: Iterable[int]) -> dict[str, np.ndarray]:
    """Precision, recall and NDCG at each k, one value per user (what paired tests compare)."""
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"precision@{k}"] = precision_at_k(hits, k)
        out[f"recall@{k}"] = recall_at_k(hits, n_relevant, k)
        out[f"ndcg@{k}"] = ndcg_at_k(hits, n_relevant, k)
    return out


def ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray, ks: Iterable[int]) -> dict[str, float]:
    """Mean precision, recall and NDCG at each k over the users given."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"precision@{k}"] = float(precision_at_k(hits, k).mean())
        out[f"recall@{k}"] = float(recall_at_k(hits, n_relevant, k).mean())
        out[f"ndcg@{k}"] = float(ndcg_at_k(hits, n_relevant, k).mean())
    return out


def aggregate(runs: Sequence[Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation (ddof=1; 0 for a single run) of each metric every run
    has (records written before a metric existed, e.g. the segment metrics, lack it)."""
    if not runs:
        raise ValueError("no runs to aggregate")
    out = {}
    for name in [n for n in runs[0] if all(n in r for r in runs)]:
        vals = np.array([r[name] for r in runs], dtype=np.float64)
        std = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out[name] = (float(vals.mean()), std)
    return out
