"""Versioned prompts: a user's sampled rating history and numbered candidate items.

Why each choice:

* The wording (``pngnn.augment.wording``) depends on the dataset: MovieLens' movies or a user's
  catalogue. Its version is part of every cache key and of every augmented edge's provenance:
  changing a wording must bump it, so old answers are never mixed with new.
* The history is drawn from the *train* part only (never valid/test) and holds both liked
  and disliked movies (half each when the user has enough), so the model sees what the
  user dislikes too.
* Candidates are shuffled per user with a seed: tiny models are position-biased (they
  answer "like 1, dislike 2" whatever the order), so the LightGCN rank must not be the
  shown order. ``variant`` gives another independent order of the same question, for
  self-consistency (ask twice, keep what agrees).
* Every random choice is a hash of (split seed, prompt seed, variant, user, item), not a
  draw from a shared generator, so a user's prompt is the same whether they are prompted
  alone or among 6,040 users, and reruns hit the cache.
* Prompts for many users are built with Polars expressions, not per-user Python loops.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pngnn.augment.wording import PROMPT_VERSION, QUESTION_PREFIX, Wording, movielens_wording
from pngnn.core.constants import LIKE_THRESHOLD
from pngnn.core.errors import PngnnError
from pngnn.data.store import Store

__all__ = ["DEFAULT_HISTORY", "PROMPT_TEMPLATE", "PROMPT_VERSION", "build_prompts", "hash_keys", "history_rows",
           "history_texts", "messages"]

DEFAULT_HISTORY = 10
# MovieLens' template, for logging next to PROMPT_VERSION (MLflow param/artifact).
PROMPT_TEMPLATE = movielens_wording(LIKE_THRESHOLD).template()

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A portable 64-bit mixer (SplitMix64), vectorised; wraps modulo 2**64 by design."""
    with np.errstate(over="ignore"):
        z = (x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def hash_keys(user_id: np.ndarray, item_id: np.ndarray, *salt: int) -> np.ndarray:
    """A deterministic pseudo-random uint64 per (salt..., user, item): the sort key of
    every seeded shuffle here; independent of which other users are in the batch."""
    base = np.zeros(1, dtype=np.uint64)
    for s in salt:
        base = _splitmix64(base ^ np.uint64(s & 0xFFFFFFFFFFFFFFFF))
    h = _splitmix64(base ^ user_id.astype(np.int64).astype(np.uint64))
    return _splitmix64(h ^ item_id.astype(np.int64).astype(np.uint64))


def history_rows(store: Store, dataset: str, seed: int, user_ids: pl.Series, history_size: int = DEFAULT_HISTORY,
                 prompt_seed: int = 0, wording: Wording | None = None) -> pl.DataFrame:
    """The sampled train ratings (user_id, item_id, rating, line), in display order.

    Up to ``history_size`` ratings per user: half liked (rating > the wording's threshold) and
    half disliked, topped up from the other side when one side is short; a user with fewer
    ratings than ``history_size`` shows them all. ``wording``: MovieLens' by default.
    """
    wording = wording or movielens_wording(LIKE_THRESHOLD)
    threshold = wording.threshold
    if history_size < 0:
        raise PngnnError(f"history size must be 0 or more, got {history_size}")
    store.register("prompt_users", pl.DataFrame({"user_id": user_ids}))
    try:
        rated = store.query_file("train_history", dataset=dataset, seed=seed)
    finally:
        store.unregister("prompt_users")
    if rated.is_empty():
        return pl.DataFrame(
            schema={"user_id": user_ids.dtype, "item_id": pl.Int32, "rating": pl.Float32, "line": pl.String}
        )
    want_like = (history_size + 1) // 2
    rated = rated.with_columns(
        key=pl.Series(hash_keys(rated["user_id"].to_numpy(), rated["item_id"].to_numpy(), seed, prompt_seed, 1)),
        liked=pl.col("rating") > threshold,
    )
    counts = rated.group_by("user_id").agg(
        n_like=pl.col("liked").sum().cast(pl.Int64), n_dis=(~pl.col("liked")).sum().cast(pl.Int64)
    )
    counts = counts.with_columns(
        take_like=pl.min_horizontal(
            pl.col("n_like"), pl.max_horizontal(pl.lit(want_like), history_size - pl.col("n_dis"))
        )
    ).with_columns(take_dis=pl.min_horizontal(pl.col("n_dis"), history_size - pl.col("take_like")))
    keep = pl.when(pl.col("liked")).then(pl.col("pos") <= pl.col("take_like")).otherwise(
        pl.col("pos") <= pl.col("take_dis")
    )
    return (
        rated.join(counts, on="user_id")
        .with_columns(pos=pl.col("key").rank("ordinal").over("user_id", "liked"))
        .filter(keep)
        .sort("user_id", "key")
        .with_columns(line=pl.concat_str(
            [pl.lit("- "), wording.label] + ([] if wording.rating is None else [pl.lit("; rated "), wording.rating])
        ))
        .select("user_id", "item_id", "rating", "line")
    )


def history_texts(rows: pl.DataFrame, user_ids: pl.Series, empty: str | None = None) -> pl.DataFrame:
    """(user_id, text): each user's sampled history (``history_rows``) as prompt lines; users
    without any train rating get the placeholder line ``empty`` (MovieLens' by default)."""
    texts = rows.group_by("user_id", maintain_order=True).agg(text=pl.col("line").str.join("\n"))
    everyone = pl.DataFrame({"user_id": user_ids}).unique(maintain_order=True)
    return everyone.join(
        texts.with_columns(pl.col("user_id").cast(user_ids.dtype)), on="user_id", how="left"
    ).with_columns(
        pl.col("text").fill_null(empty or movielens_wording(LIKE_THRESHOLD).empty_history))


def build_prompts(store: Store, dataset: str, seed: int, candidates: pl.DataFrame,
                  history_size: int = DEFAULT_HISTORY, prompt_seed: int = 0, variants: int = 1,
                  wording: Wording | None = None) -> pl.DataFrame:
    """One row per (user, variant): user_id, variant, items (candidate ids in shown
    order, ``items[i-1]`` is number i), n (number of candidates), content (user message).

    ``candidates`` holds (user_id, rank, item_id), e.g. from ``candidates_frame``; ``wording``:
    the dataset's (``pngnn.augment.wording.wording_for``), MovieLens' by default. A user
    with fewer than two candidates cannot answer "like one, dislike another": that is an
    error naming the users, not a silent skip.
    """
    if candidates.is_empty():
        raise PngnnError(
            f"empty candidate list for {dataset} seed {seed}: no user has an unseen item to ask about; "
            "select other users or use a dataset with unrated items"
        )
    sizes = candidates.group_by("user_id").len()
    short = sizes.filter(pl.col("len") < 2).sort("user_id")
    if short.height:
        raise PngnnError(
            f"{short.height} user(s) have fewer than 2 candidates (e.g. user {short['user_id'][0]}); "
            "the prompt needs two different candidates: ask for more candidates or leave these users out"
        )
    if variants < 1:
        raise PngnnError(f"number of prompt variants must be at least 1, got {variants}")
    wording = wording or movielens_wording(LIKE_THRESHOLD)
    labels = store.query_sql(
        "SELECT item_id, title, year, genres, text, external_id FROM items WHERE dataset = $dataset", dataset=dataset
    ).with_columns(label=wording.label).select("item_id", "label")
    cand = candidates.select("user_id", "item_id").join(
        labels.with_columns(pl.col("item_id").cast(candidates.schema["item_id"])), on="item_id", how="left"
    )
    frames = []
    for variant in range(variants):
        keys = hash_keys(cand["user_id"].to_numpy(), cand["item_id"].to_numpy(), seed, prompt_seed, 2, variant)
        keyed = cand.with_columns(key=pl.Series(keys)).sort("user_id", "key")
        frames.append(
            keyed.with_columns(num=pl.int_range(1, pl.len() + 1).over("user_id"))
            .with_columns(line=pl.format("{}. {}", pl.col("num"), pl.col("label").fill_null("Unknown title")))
            .group_by("user_id", maintain_order=True)
            .agg(items=pl.col("item_id").cast(pl.Int32), cand_text=pl.col("line").str.join("\n"))
            .with_columns(variant=pl.lit(variant, dtype=pl.Int32))
        )
    shown = pl.concat(frames).with_columns(n=pl.col("items").list.len().cast(pl.Int32))
    users = shown["user_id"].unique().sort()
    history = history_texts(history_rows(store, dataset, seed, users, history_size, prompt_seed, wording), users,
                            wording.empty_history)
    prompts = shown.join(history, on="user_id", how="left").with_columns(
        content=pl.concat_str(
            [
                pl.lit(wording.history_header + "\n"),
                pl.col("text"),
                pl.lit("\n\n" + wording.candidate_header + "\n"),
                pl.col("cand_text"),
                pl.lit("\n\n"),
                pl.lit(QUESTION_PREFIX),
                pl.col("n").cast(pl.String),
                pl.lit("."),
            ]
        )
    )
    return prompts.select("user_id", "variant", "items", "n", "content").sort("user_id", "variant")


def messages(content: str, wording: Wording | None = None) -> list[dict[str, str]]:
    """The chat messages of one prompt (the wording's system instruction + the user's content)."""
    system = (wording or movielens_wording(LIKE_THRESHOLD)).system
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]
