"""LLM answers -> augmented edges, and their loading for training and their precision.

'like' becomes a positive edge, 'dislike' a negative edge (``pngnn/data/sql/merge_augmented.sql``).
Edges that duplicate any rating of the split are dropped, test ratings included: an
augmented edge on a test pair would put the held-out answer into the training graph.
``load_augmented`` returns the edges in the dense index space of ``load_split`` so they
concatenate with ``split.train`` as they are (LightGCN takes the positive edges through
``train_lightgcn(extra_edges=...)``; PN-GNN takes both).

With ``scoring="logprobs"`` the like of each prompt whose answer carries log-probabilities is
the position-debiased argmax of them (``pngnn.augment.logprobs.debiased_likes``, the batch
being every answered prompt of the split, model and prompt version), never the JSON answer's
dislike; the dislike stays the answer's. ``augmented_merges`` records which scoring made the
edges of each merge.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import get_args

import numpy as np
import polars as pl

from pngnn.augment.logprobs import debiased_likes, parse_scores, score_matrix
from pngnn.augment.prompts import PROMPT_VERSION
from pngnn.core.constants import LIKE_THRESHOLD
from pngnn.core.errors import PngnnError
from pngnn.core.settings import Scoring
from pngnn.data.scale import rating_scale
from pngnn.data.split import Interactions
from pngnn.data.store import Store

SCORINGS: tuple[Scoring, ...] = get_args(Scoring)


def scored_likes(store: Store, dataset: str, seed: int, model: str, prompt_version: str = PROMPT_VERSION,
                 scoring: Scoring = "answer") -> pl.DataFrame:
    """(key, like_idx): the like the scoring picks for each answered prompt of the split that
    it decides (none for ``answer``; for ``logprobs`` those whose answer carries scores)."""
    if scoring not in SCORINGS:
        raise PngnnError(f"unknown scoring '{scoring}'", f"choose one of: {', '.join(SCORINGS)}")
    empty = pl.DataFrame(schema={"key": pl.String, "like_idx": pl.Int32})
    if scoring == "answer":
        return empty
    rows = store.query_file("scored_answers", dataset=dataset, seed=seed, model=model,
                            prompt_version=prompt_version)
    if not rows.height:
        return empty
    matrix = score_matrix([parse_scores(t) or [] for t in rows["scores"]])
    likes = debiased_likes(matrix, rows["dislike_idx"].to_numpy().astype(np.int64))
    return pl.DataFrame({"key": rows["key"], "like_idx": pl.Series(likes, dtype=pl.Int32)})


@contextlib.contextmanager
def _likes_registered(store: Store, likes: pl.DataFrame) -> Iterator[None]:
    """``likes`` as the ``llm_likes`` view the merge and precision SQL read."""
    store.register("llm_likes", likes)
    try:
        yield
    finally:
        store.unregister("llm_likes")


def merge_augmented(
    store: Store,
    dataset: str,
    seed: int,
    model: str,
    prompt_version: str = PROMPT_VERSION,
    run_id: str | None = None,
    scoring: Scoring = "answer",
) -> dict[str, int]:
    """Replace the augmented edges of (dataset, seed, model, prompt_version) from the
    cached answers, the likes chosen by ``scoring``; returns counts: positive/negative edges
    added, agreed answers dropped because the pair is rated in the split (``dropped_rated``),
    and prompts whose like the log-probabilities chose (``scored``)."""
    likes = scored_likes(store, dataset, seed, model, prompt_version, scoring)
    try:
        with _likes_registered(store, likes), store.transaction():
            counts = store.query_file("merge_augmented", dataset=dataset, seed=seed, model=model,
                                      prompt_version=prompt_version, run_id=run_id,
                                      scoring=scoring).row(0, named=True)
    finally:
        store.run_sql("DROP TABLE IF EXISTS llm_agreed")
    positive, negative = int(counts["positive"]), int(counts["negative"])
    return {"positive": positive, "negative": negative, "dropped_rated": int(counts["agreed"]) - positive - negative,
            "scored": likes.height}


def load_augmented(
    store: Store,
    dataset: str,
    seed: int,
    model: str | None = None,
    prompt_version: str | None = None,
) -> tuple[Interactions, Interactions]:
    """(positive, negative) augmented edges of a split as dense indices, rated on the dataset's own
    scale (``RatingScale.edge_ratings``: 5 and 1 on MovieLens), so they pass every like threshold
    test the way a real rating would. ``model`` and ``prompt_version`` filter by provenance (None: all)."""
    like, dislike = rating_scale(store, dataset).edge_ratings
    frame = store.query_file("load_augmented", dataset=dataset, seed=seed, model=model, prompt_version=prompt_version)

    def part(kind: str, rating: float) -> Interactions:
        sub = frame.filter(pl.col("kind") == kind)
        return Interactions(
            sub["user_idx"].to_numpy().astype(np.int64),
            sub["item_idx"].to_numpy().astype(np.int64),
            np.full(sub.height, rating, dtype=np.float32),
        )

    return part("positive", like), part("negative", dislike)


def edge_precision(store: Store, dataset: str, seed: int, model: str, prompt_version: str = PROMPT_VERSION,
                   threshold: float = LIKE_THRESHOLD, scoring: Scoring = "answer") -> dict[str, float]:
    """How often the LLM's 'like' is a held-out test like and its 'dislike' a test
    dislike, next to the base rates of the candidates it chose from (and the lifts,
    precision / base rate: above 1 means better than picking at random), the likes chosen by
    ``scoring`` as the merge chooses them."""
    with _likes_registered(store, scored_likes(store, dataset, seed, model, prompt_version, scoring)):
        row = store.query_file(
            "edge_precision", dataset=dataset, seed=seed, model=model, prompt_version=prompt_version,
            threshold=threshold,
        ).row(0, named=True)
    if not row["n_answers"]:
        raise PngnnError(
            f"no usable LLM answer for {dataset} seed {seed}, model '{model}', prompt {prompt_version}; "
            "run the augmentation first"
        )
    out = {k: float(v) if v is not None else float("nan") for k, v in row.items()}
    for kind in ("like", "dislike"):
        base = out[f"{kind}_base_rate"]
        out[f"{kind}_lift"] = out[f"{kind}_precision"] / base if base > 0 else float("nan")
    return out
