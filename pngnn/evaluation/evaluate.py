"""Full-ranking evaluation: every item is a candidate, items seen in training are masked.

Users are scored in blocks (rows of the user x item score matrix a few at a time), seen
items are masked through their CSR index, then ``topk`` picks the list; relevance is looked
up among the block's ground-truth pairs for the top-k cells only. Users with no relevant
test item are skipped (they have no recall), as are test ratings at or below the threshold:
ground truth is "the user liked it" (rating > ``LIKE_THRESHOLD`` by default), not "the user
watched it".

Memory: nothing of size users x items is ever allocated. A block has at most ``block`` rows
and at most ``max_cells`` score cells (``MAX_SCORE_CELLS``), whichever is fewer, so the rows
shrink as the catalogue grows (ML-20M's 26,744 items: 313 users a block) and the largest
tensors are the scorer's block and its masked copy, 2 x ``max_cells`` float32, whatever the
number of users. Everything else is per user (the top-k lists) or per rating (the CSR
indices). ML-100K and ML-1M keep their 2,048-user blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from pngnn.core.constants import KS, LIKE_THRESHOLD
from pngnn.data.split import Interactions
from pngnn.evaluation.metrics import per_user_metrics, ranking_metrics
from pngnn.evaluation.segments import segment_metrics

# Score cells (users x items) of one block: 2,048 users x 4,096 items, 32 MiB as float32.
MAX_SCORE_CELLS = 2048 * 4096


def block_rows(n_items: int, block: int = 2048, max_cells: int = MAX_SCORE_CELLS) -> int:
    """Users per block: ``block``, or fewer so that a block's score matrix holds at most
    ``max_cells`` cells (at least one user)."""
    return max(1, min(block, max_cells // max(n_items, 1)))


def csr_rows(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, items sorted by user) for fast per-block lookups."""
    order = np.argsort(users, kind="stable")
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return indptr, items[order]


def top_k_hits(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    users: np.ndarray,
    n_items: int,
    seen: Interactions,
    truth: Interactions,
    k: int,
    block: int = 2048,
    max_cells: int = MAX_SCORE_CELLS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank all unseen items for ``users``; return (top-k items, hit matrix, n_relevant).

    A hit is looked up by key (block row x n_items + item) among the block's ground-truth
    pairs, for the top-k cells only: no dense ground-truth block beside the scores."""
    n_users_total = int(max(users.max(initial=0), seen.users.max(initial=0), truth.users.max(initial=0))) + 1
    seen_ptr, seen_cols = csr_rows(seen.users, seen.items, n_users_total)
    true_ptr, true_cols = csr_rows(truth.users, truth.items, n_users_total)
    rows_per_block = block_rows(n_items, block, max_cells)
    tops, hits = [], []
    for start in range(0, len(users), rows_per_block):
        ids = users[start : start + rows_per_block]
        scores = unseen_scores(score_fn, ids, seen_ptr, seen_cols)
        top = torch.topk(scores, k, dim=1).indices
        del scores
        t_rows, t_cols = gather_rows(true_ptr, true_cols, ids)
        truth_keys = (t_rows * n_items + t_cols).to(top.device)
        top_keys = torch.arange(len(ids), device=top.device)[:, None] * n_items + top
        tops.append(top.cpu().numpy())
        hits.append(torch.isin(top_keys, truth_keys).cpu().numpy())
    n_relevant = np.diff(true_ptr)[users]
    return np.concatenate(tops), np.concatenate(hits), n_relevant


def unseen_scores(score_fn: Callable[[torch.Tensor], torch.Tensor], ids: np.ndarray, seen_ptr: np.ndarray,
                  seen_cols: np.ndarray) -> torch.Tensor:
    """Scores of the users ``ids`` against every item, their seen items at -inf, on the scorer's
    device (only the indices travel there; a block's top-k is all that comes back)."""
    scores = score_fn(torch.from_numpy(ids)).float().clone()
    # Map the block's users to rows through gathered CSR slices (users may be any subset).
    rows, cols = gather_rows(seen_ptr, seen_cols, ids)
    scores[rows.to(scores.device), cols.to(scores.device)] = -torch.inf
    return scores


def gather_rows(indptr: np.ndarray, cols: np.ndarray, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR entries of the rows ``ids`` as (block row, column) index pairs, vectorised.

    Public because masking a block of users' seen items is needed wherever a block is
    ranked: evaluation and the LLM candidates."""
    starts, stops = indptr[ids], indptr[ids + 1]
    lengths = stops - starts
    rows = np.repeat(np.arange(len(ids)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return torch.from_numpy(rows), torch.from_numpy(cols[np.repeat(starts, lengths) + offsets])


def evaluate(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    n_items: int,
    seen: Interactions,
    test: Interactions,
    threshold: float = LIKE_THRESHOLD,
    ks: Iterable[int] = KS,
    block: int = 2048,
    segments: bool = False,
    max_cells: int = MAX_SCORE_CELLS,
    per_user: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """P/R/NDCG@K over users that have at least one test rating above ``threshold``.

    ``segments``: also the metrics by segment (``pngnn.evaluation.segments``), from the same ranked lists, as
    ``<segment>/<metric>`` (e.g. ``users_q1/recall@20``: MLflow groups such names in its charts);
    activity and item degrees are counted on ``seen``, the ratings the model was trained on.
    ``block``, ``max_cells``: the most users and score cells of one block (see the module's
    "Memory"); they change the peak, never the metrics. ``per_user``: a dict filled with ``user``
    (the evaluated users' indices) and each metric per user, from the same ranked lists."""
    ks = sorted(ks)
    truth = test.select(test.ratings > threshold)
    users = np.unique(truth.users)
    if users.size == 0:
        raise ValueError(f"no test rating above {threshold}: nothing to evaluate")
    top, hits, n_relevant = top_k_hits(score_fn, users, n_items, seen, truth, ks[-1], block, max_cells)
    metrics = ranking_metrics(hits, n_relevant, ks)
    metrics["n_eval_users"] = float(users.size)
    if per_user is not None:
        per_user.update(user=users, **per_user_metrics(hits, n_relevant, ks))
    if segments:
        n_users = int(max(users.max(), seen.users.max(initial=0))) + 1
        by_segment = segment_metrics(users, top, hits, n_relevant, truth.users, truth.items,
                                     np.bincount(seen.users, minlength=n_users),
                                     np.bincount(seen.items, minlength=n_items), ks)
        metrics.update({f"{name}/{key}": value for name, values in by_segment.items() for key, value in values.items()})
    return metrics
