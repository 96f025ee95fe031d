"""Candidates for the LLM: the top-N unseen items per user from a pretrained LightGCN.

The LLM only chooses among items the graph model already ranks high (LLMRec's design):
asking it about random movies would mostly produce obvious dislikes. Items the user
rated in train or validation are masked, exactly as in ``pngnn.evaluation.evaluate``; test items
are not masked (the model cannot know them), so the merge step drops any edge that hits
a rated pair. Scoring runs in blocks of users, fully vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import polars as pl
import torch

from pngnn.core.constants import DEFAULT_RANKER, USER_ORDERS, UserOrder
from pngnn.core.errors import PngnnError
from pngnn.data.split import SplitData
from pngnn.data.store import Store
from pngnn.evaluation.evaluate import csr_rows, unseen_scores
from pngnn.models.base import GraphRecommender
from pngnn.training.methods import seen_items

DEFAULT_CANDIDATES = 10


def select_users(
    store: Store,
    dataset: str,
    users: Sequence[int] | None = None,
    sample: int | None = None,
    sample_seed: int = 0,
    by: UserOrder = "random",
    seed: int | None = None,
) -> pl.DataFrame:
    """Which users to augment: all (default), ``sample`` of them, or the explicit ``users``
    (MovieLens user ids). Returns (user_id, user_idx) sorted by user_idx.

    ``by="random"``: a seeded sample drawn with numpy over users in user_idx order, so a seed
    picks the same users on any machine and on every split. ``by="sparsest"``: the users with
    the fewest train ratings in split ``seed`` (the sparsity the paper's LLM step is meant to
    relieve), ties broken by a seeded shuffle so no id range is favoured. A sample at least as
    large as the population is all users.
    """
    if by not in USER_ORDERS:
        raise PngnnError(f"unknown user order '{by}'; choose one of: {', '.join(USER_ORDERS)}")
    if users is not None and sample is not None:
        raise PngnnError("give either a list of users or a sample size, not both")
    frame = store.query_sql(
        "SELECT user_id, user_idx FROM users WHERE dataset = $dataset AND user_idx IS NOT NULL ORDER BY user_idx",
        dataset=dataset,
    )
    if frame.is_empty():
        raise PngnnError(f"dataset '{dataset}' has no users in {store.path}; run `pngnn ingest {dataset}` first")
    if users is not None:
        wanted = pl.DataFrame({"user_id": list(users)}, schema={"user_id": frame.schema["user_id"]}).unique()
        unknown = wanted.join(frame, on="user_id", how="anti")["user_id"].sort().to_list()
        if unknown:
            shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
            # Series.min/max are typed as any Python scalar; user_id is an integer column
            lo, hi = cast(int, frame["user_id"].min()), cast(int, frame["user_id"].max())
            raise PngnnError(
                f"{len(unknown)} unknown user id(s) for dataset '{dataset}': {shown}; valid ids are {lo}..{hi}"
            )
        return frame.join(wanted, on="user_id", how="semi").sort("user_idx")
    if sample is not None:
        if sample < 1:
            raise PngnnError(f"user sample size must be at least 1, got {sample}")
        if sample < frame.height:
            if by == "sparsest":
                return _sparsest(store, dataset, seed, sample, sample_seed)
            pick = np.sort(np.random.default_rng(sample_seed).choice(frame.height, size=sample, replace=False))
            return frame[pick]
    return frame


def _sparsest(store: Store, dataset: str, seed: int | None, sample: int, sample_seed: int) -> pl.DataFrame:
    if seed is None:
        raise PngnnError("sparsest-first user selection needs the split seed: its train ratings rank the users")
    ranked = store.query_file("users_by_train_ratings", dataset=dataset, seed=seed)
    if ranked.is_empty():
        raise PngnnError(
            f"split {seed} of '{dataset}' has no train ratings; run `pngnn split {dataset} --seed {seed}` first"
        )
    tie_break = np.random.default_rng(sample_seed).permutation(ranked.height)
    order = np.lexsort((tie_break, ranked["train_ratings"].to_numpy()))
    return ranked[np.sort(order[:sample])].select("user_id", "user_idx")


def top_candidates(
    model: GraphRecommender,
    split: SplitData,
    user_idx: np.ndarray,
    n: int = DEFAULT_CANDIDATES,
    block: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """(items, scores), each [len(user_idx), n]: the best-scored items each user has not
    rated in train or validation, best first. A slot with no unseen item left has item -1.
    """
    if n < 1:
        raise PngnnError(f"number of candidates must be at least 1, got {n}")
    user_idx = np.asarray(user_idx, dtype=np.int64)
    seen = seen_items(split)
    ptr, cols = csr_rows(seen.users, seen.items, split.n_users)
    k = min(n, split.n_items)
    items_out, scores_out = [], []
    model.eval()
    score = model.scorer()
    for start in range(0, len(user_idx), block):
        ids = user_idx[start : start + block]
        top = torch.topk(unseen_scores(score, ids, ptr, cols), k, dim=1)
        items_out.append(top.indices.cpu().numpy())
        scores_out.append(top.values.cpu().numpy())
    items_arr = np.concatenate(items_out) if items_out else np.zeros((0, k), dtype=np.int64)
    scores_arr = np.concatenate(scores_out) if scores_out else np.zeros((0, k), dtype=np.float32)
    items_arr = np.where(np.isfinite(scores_arr), items_arr, -1)
    if k < n:  # fewer items than asked: pad with "no item"
        items_arr = np.pad(items_arr, ((0, 0), (0, n - k)), constant_values=-1)
        scores_arr = np.pad(scores_arr, ((0, 0), (0, n - k)), constant_values=-np.inf)
    return items_arr, scores_arr


def candidates_frame(
    store: Store,
    split: SplitData,
    model: GraphRecommender,
    selected: pl.DataFrame,
    n: int = DEFAULT_CANDIDATES,
) -> pl.DataFrame:
    """Long frame (user_id, rank, item_id, score) of each selected user's top-n unseen items.

    ``selected`` is ``select_users``' output. Slots without an unseen item are left out,
    so a user who rated everything has no rows (the prompt step reports it).
    """
    items, scores = top_candidates(model, split, selected["user_idx"].to_numpy(), n)
    n_users = selected.height
    long = pl.DataFrame(
        {
            "user_id": np.repeat(selected["user_id"].to_numpy(), n),
            "rank": np.tile(np.arange(1, n + 1, dtype=np.int32), n_users),
            "item_idx": items.reshape(-1).astype(np.int32),
            "score": scores.reshape(-1).astype(np.float64),
        }
    ).filter(pl.col("item_idx") >= 0)
    id_map = store.query_sql(
        "SELECT item_idx, item_id FROM items WHERE dataset = $dataset AND item_idx IS NOT NULL", dataset=split.dataset
    )
    return (
        long.join(id_map.with_columns(pl.col("item_idx").cast(pl.Int32)), on="item_idx", how="left")
        .select("user_id", "rank", "item_id", "score")
        .sort("user_id", "rank")
    )


def save_candidates(store: Store, dataset: str, seed: int, candidates: pl.DataFrame,
                    ranker: str = DEFAULT_RANKER) -> None:
    """Replace the stored candidates of these users (kept for prompts, resume and precision),
    labelled with the profile of the LightGCN that ranked them (``ranker``)."""
    store.register("new_candidates", candidates)
    try:
        with store.transaction():
            store.run_file("save_candidates", dataset=dataset, seed=seed, ranker=ranker)
    finally:
        store.unregister("new_candidates")


def load_candidates(store: Store, dataset: str, seed: int, selected: pl.DataFrame) -> pl.DataFrame:
    """Stored candidates of the selected users (resume without the LightGCN model)."""
    store.register("selected_users", selected.select("user_id"))
    try:
        frame = store.query_file("load_candidates", dataset=dataset, seed=seed)
    finally:
        store.unregister("selected_users")
    missing = selected.join(frame, on="user_id", how="anti").height
    if missing:
        raise PngnnError(
            f"{missing} selected user(s) of {dataset} seed {seed} have no stored candidates; "
            "pass the trained LightGCN model so they can be computed"
        )
    return frame
