"""How a stored dataset's ratings read: MovieLens or a user's own data, its like threshold, its
range and whether it has titles. The LLM step reads it to word a prompt for the dataset and to give
the LLM's likes and dislikes ratings on the dataset's own scale."""

from __future__ import annotations

from dataclasses import dataclass

from pngnn.core.constants import LIKE_THRESHOLD
from pngnn.core.errors import PngnnError
from pngnn.data.store import Store


@dataclass(frozen=True)
class RatingScale:
    """``own_data``: ingested with ``pngnn ingest --name`` (its threshold set there), not MovieLens."""

    dataset: str
    own_data: bool
    threshold: float
    implicit: bool
    low: float
    high: float
    titled_items: int
    rated_items: int

    @property
    def edge_ratings(self) -> tuple[float, float]:
        """(like, dislike): the ratings an LLM like and dislike stand for. MovieLens keeps 5 and 1;
        a user's data gets its highest rating and its lowest (at most the threshold), so the edges
        fall on the liked and disliked sides of its own threshold whatever its scale."""
        if not self.own_data:
            return 5.0, 1.0
        return self.high, min(self.low, self.threshold)


def rating_scale(store: Store, dataset: str) -> RatingScale:
    """The ``RatingScale`` of a dataset in ``store``; an error naming the fix when it is not ingested."""
    rows = store.query_file("rating_scale", dataset=dataset)
    if not rows.height:
        raise PngnnError(f"dataset '{dataset}' is not in {store.path}",
                         f"ingest it first (`pngnn ingest {dataset}`, or `pngnn ingest --name {dataset} "
                         "--ratings FILE` for your own data)")
    row = rows.row(0, named=True)
    own = row["like_threshold"] is not None
    return RatingScale(dataset=dataset, own_data=own,
                       threshold=float(row["like_threshold"]) if own else LIKE_THRESHOLD,
                       implicit=bool(row["implicit"]), low=float(row["low"] or 0.0), high=float(row["high"] or 0.0),
                       titled_items=int(row["titled"]), rated_items=int(row["rated_items"]))
