"""The served recommender: a trained model's arrays plus what turns scores into an answer.

A ``Recommender`` holds the model's scores as arrays (``pngnn.models.factors``), the items
each user rated in the model's training data (masked: never recommended again), and the
MovieLens ids and titles. ``recommend`` ranks a batch of users in one vectorised pass
(a matrix product, the mask, one sort) and answers in MovieLens ids with titles.

Stored as one folder of NumPy and Parquet files (``save``/``load``), so the registered
model is numbers and tables, readable without torch, without the training data and without
the DuckDB file. NumPy and pandas only: this module runs inside the served model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pngnn.core.errors import UserError
from pngnn.models.factors import CsrRows, ScoreFactors

FORMAT_VERSION = 1
DEFAULT_K = 10
# Users scored per matrix product: bounds the [block, n_items] score matrix of a big request.
BLOCK = 1024
# The answer's columns and their MLflow types (the model signature's outputs).
OUTPUT_COLUMNS = {"user_id": "long", "rank": "long", "item_id": "long", "title": "string", "score": "double"}


UnknownPolicy = Literal["popular", "error"]
UNKNOWN_POLICIES: tuple[str, ...] = ("popular", "error")


class UnknownUsers(UserError):
    """Some requested MovieLens user ids are not users the model was trained on."""

    def __init__(self, user_ids: list[int], problem: str, fix: str) -> None:
        super().__init__(problem, fix)
        self.user_ids = user_ids


@dataclass(frozen=True)
class Recommender:
    """A model's scores, its users' seen items, and the id maps and titles, as arrays."""

    factors: ScoreFactors
    seen: CsrRows  # per model row (user_idx): the item_idx of the items it was trained on
    user_ids: np.ndarray  # [n_users]: id of each model row: int64 (MovieLens) or str objects (a user's data)
    item_ids: np.ndarray  # [n_items]: id of each model column, the same kind
    titles: np.ndarray  # object [n_items]: title of each model column (None when unknown)

    @property
    def string_ids(self) -> bool:
        """Whether the ids are a user's own strings (else MovieLens' numbers)."""
        return self.user_ids.dtype == object

    def ids(self, user_ids: Any) -> np.ndarray:
        """Request ids in the kind this model's ids are."""
        return np.asarray(user_ids, dtype=object).astype(str).astype(object) if self.string_ids else \
            np.asarray(user_ids, dtype=np.int64)

    def __post_init__(self) -> None:
        n_users, n_items = self.factors.n_users, self.factors.n_items
        users_agree = self.seen.n_rows == len(self.user_ids) == n_users
        if not (users_agree and len(self.item_ids) == len(self.titles) == n_items):
            raise ValueError(f"inconsistent recommender arrays: {n_users} users x {n_items} items scored, seen index "
                             f"of {self.seen.n_rows} users, {len(self.user_ids)} user ids, {len(self.item_ids)} item "
                             f"ids, {len(self.titles)} titles")

    @classmethod
    def build(cls, factors: ScoreFactors, seen_users: np.ndarray, seen_items: np.ndarray, users: pd.DataFrame,
              items: pd.DataFrame) -> Recommender:
        """From a model's factors, its (user_idx, item_idx) training pairs and the catalogue:
        ``users`` with (user_id, user_idx), ``items`` with (item_id, item_idx, title)."""
        n_users, n_items = factors.n_users, factors.n_items
        user_ids = _by_index(users, "user_idx", "user_id", n_users, "users")
        item_ids = _by_index(items, "item_idx", "item_id", n_items, "items")
        titles = np.full(n_items, None, dtype=object)
        titles[items["item_idx"].to_numpy(np.int64)] = items["title"].to_numpy(object)
        seen = CsrRows.from_pairs(seen_users, seen_items, n_users, n_items)
        return cls(factors, seen, user_ids, item_ids, titles)

    # -- ranking --------------------------------------------------------------------------------

    def lookup(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(model row, known) of each id; the row of an unknown id is meaningless."""
        order = np.argsort(self.user_ids, kind="stable")
        sorted_ids = self.user_ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, user_ids), 0, len(sorted_ids) - 1)
        return order[pos], sorted_ids[pos] == user_ids

    def rows_of(self, user_ids: np.ndarray) -> np.ndarray:
        """Model rows of MovieLens user ids; ``UnknownUsers`` names the ids it does not know."""
        rows, known = self.lookup(user_ids)
        if not known.all():
            sorted_ids = np.sort(self.user_ids, kind="stable")
            unknown = list(dict.fromkeys(u if self.string_ids else int(u) for u in user_ids[~known]))
            shown = ", ".join(map(str, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise UnknownUsers(
                unknown, f"unknown user{'s' if len(unknown) > 1 else ''} {shown}: the model knows "
                f"{len(self.user_ids)} user ids, from {sorted_ids[0]} to {sorted_ids[-1]}",
                "ask for users it was trained on (its users.parquet artifact lists them)")
        return rows

    def seen_counts(self, user_ids: np.ndarray) -> np.ndarray:
        """How many items are masked for each user (what they rated in the training data)."""
        return self.seen.counts(self.rows_of(self.ids(user_ids)))

    def recommend(self, user_ids: np.ndarray, ks: np.ndarray, unknown: UnknownPolicy = "error") -> pd.DataFrame:
        """The top ``ks[j]`` unseen items of user ``user_ids[j]``, best first, ties by item order:
        one row per (user, rank) with ``OUTPUT_COLUMNS``, users in request order. A user with
        fewer unseen items than asked gets all of them. Users the model does not know: an
        ``UnknownUsers`` error naming them (``unknown="error"``), or the items most rated in the
        model's training data, scored by their share of its ratings (``"popular"``: a new user
        of a served model gets an answer, the rest of the batch is not refused for them)."""
        user_ids = self.ids(user_ids)
        ks = np.asarray(ks, dtype=np.int64)
        if len(ks) != len(user_ids):
            raise ValueError(f"{len(user_ids)} users but {len(ks)} values of k")
        if (ks < 1).any():
            raise UserError(f"k must be a whole number >= 1 for every user, got {sorted(set(ks.tolist()))[:5]}",
                            f"leave k out for the top {DEFAULT_K}")
        if unknown not in UNKNOWN_POLICIES:
            raise UserError(f"unknown_users must be one of {', '.join(UNKNOWN_POLICIES)}, got {unknown!r}",
                            "leave it out for the popular items")
        if unknown == "error":
            rows, known = self.rows_of(user_ids), np.ones(len(user_ids), dtype=bool)
        else:
            rows, known = self.lookup(user_ids)
        kmax = int(min(ks.max(initial=1), self.factors.n_items))
        scored = rows[known]
        parts = [self._rank_block(scored[s:s + BLOCK], kmax) for s in range(0, len(scored), BLOCK)]
        items = np.zeros((len(user_ids), kmax), np.int64)
        scores = np.zeros((len(user_ids), kmax), np.float32)
        if parts:
            items[known] = np.concatenate([p[0] for p in parts])
            scores[known] = np.concatenate([p[1] for p in parts])
        if not known.all():
            items[~known], scores[~known] = self._popular(kmax)
        ranks = np.broadcast_to(np.arange(1, kmax + 1), items.shape)
        keep = (ranks <= ks[:, None]) & np.isfinite(scores)
        users = np.broadcast_to(user_ids[:, None], items.shape)
        chosen = items[keep]
        return pd.DataFrame({
            "user_id": users[keep].astype(user_ids.dtype),
            "rank": ranks[keep].astype(np.int64),
            "item_id": self.item_ids[chosen],
            "title": self.titles[chosen],
            "score": scores[keep].astype(np.float64),
        })

    def _popular(self, kmax: int) -> tuple[np.ndarray, np.ndarray]:
        """(item_idx, share of the training ratings) of the ``kmax`` most rated items, ties by item order."""
        counts = np.bincount(self.seen.cols, minlength=self.factors.n_items)
        top = np.argsort(-counts, kind="stable")[:kmax]
        return top, (counts[top] / max(int(counts.sum()), 1)).astype(np.float32)

    def _rank_block(self, rows: np.ndarray, kmax: int) -> tuple[np.ndarray, np.ndarray]:
        """(item_idx, score) [len(rows), kmax] of the best unseen items; seen ones score -inf."""
        scores = self.factors.scores(rows)
        block_rows, pos = self.seen.entries(rows)
        scores[block_rows, self.seen.cols[pos]] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :kmax]  # stable: ties keep item order
        return top, np.take_along_axis(scores, top, axis=1)

    # -- storage --------------------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        """The arrays as ``.npy`` files, the catalogue as Parquet, the layout in ``recommender.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        users = self.factors.users
        sparse = isinstance(users, CsrRows)
        arrays: dict[str, np.ndarray] = {"item_weights": self.factors.item_weights, "seen_indptr": self.seen.indptr,
                                         "seen_items": self.seen.cols}
        if isinstance(users, CsrRows):
            values = users.values if users.values is not None else np.ones(len(users.cols), np.float32)
            arrays.update(user_indptr=users.indptr, user_cols=users.cols, user_values=values)
        else:
            arrays["user_vectors"] = users
        if self.factors.item_bias is not None:
            arrays["item_bias"] = self.factors.item_bias
        if self.factors.item_index is not None:
            arrays["item_index"] = self.factors.item_index
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        kind = "string" if self.string_ids else "int64"
        pd.DataFrame({"user_idx": np.arange(len(self.user_ids)),
                      "user_id": pd.array(self.user_ids, dtype=kind)}).to_parquet(folder / "users.parquet", index=False)
        pd.DataFrame({"item_idx": np.arange(len(self.item_ids)), "item_id": pd.array(self.item_ids, dtype=kind),
                      "title": pd.array(self.titles, dtype="string")}).to_parquet(folder / "items.parquet", index=False)
        layout = {"format": FORMAT_VERSION, "users": "sparse" if sparse else "dense",
                  "width": int(self.factors.item_weights.shape[0]), "n_users": self.factors.n_users,
                  "n_items": self.factors.n_items, "item_bias": self.factors.item_bias is not None,
                  "item_index": self.factors.item_index is not None}
        (folder / "recommender.json").write_text(json.dumps(layout, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path) -> Recommender:
        """What ``save`` wrote. The arrays are memory-mapped: pages are read as scoring touches
        them, and server workers on one machine share them."""
        layout = json.loads((folder / "recommender.json").read_text())
        if layout.get("format") != FORMAT_VERSION:
            raise UserError(f"recommender format {layout.get('format')} in {folder}, this code reads "
                            f"{FORMAT_VERSION}", "load it with the pngnn version it was logged with (its code/ folder)")

        def array(name: str) -> np.ndarray:
            return np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)

        width, n_items = layout["width"], layout["n_items"]
        if layout["users"] == "sparse":
            users: np.ndarray | CsrRows = CsrRows(array("user_indptr"), array("user_cols"), array("user_values"),
                                                  width)
        else:
            users = array("user_vectors")
        compact = bool(layout.get("item_index"))  # models logged before it have every item's column
        factors = ScoreFactors(users, array("item_weights"), array("item_bias") if layout["item_bias"] else None,
                               array("item_index") if compact else None, n_items if compact else None)
        seen = CsrRows(array("seen_indptr"), array("seen_items"), None, n_items)
        user_frame = pd.read_parquet(folder / "users.parquet")
        item_frame = pd.read_parquet(folder / "items.parquet")
        titles = item_frame["title"].astype(object).where(item_frame["title"].notna(), None).to_numpy(object)
        return cls(factors, seen, _ids(user_frame["user_id"]), _ids(item_frame["item_id"]), titles)


def _ids(column: pd.Series) -> np.ndarray:
    """Saved ids as int64 (MovieLens) or as str objects (a user's own ids)."""
    if pd.api.types.is_integer_dtype(column):
        return column.to_numpy(np.int64)
    return column.astype(str).to_numpy(object)


def _by_index(frame: pd.DataFrame, index: str, value: str, n: int, what: str) -> np.ndarray:
    """``frame[value]`` placed at ``frame[index]`` for the dense indices 0..n-1, each exactly once."""
    idx = frame[index].to_numpy(np.int64)
    if len(idx) != n or not np.array_equal(np.sort(idx), np.arange(n)):
        raise UserError(f"the {what} catalogue has {len(idx)} rows for the model's {n} {what}",
                        "log the model with the DuckDB file it was trained from")
    values = _ids(frame[value])
    out = np.empty(n, dtype=values.dtype)
    out[idx] = values
    return out
