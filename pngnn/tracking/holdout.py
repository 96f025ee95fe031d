"""Promotion on a holdout: the candidate and the production model scored on the same validation part.

A re-augmentation must not decide promotion on the test split its results report, nor compare two
test metrics measured on two different splits (the data grows between runs). Both registered
models are loaded as served (``Recommender``) and ranked for the users of the *current* split's
validation part that both know, masking that split's train items; the ground truth is the
validation likes. Items a model has never seen (new since it was trained) it cannot recommend:
that is part of what a newer model is for.

The comparison leans towards keeping production: production may have trained on some of these
validation ratings (a model from a split without a validation part, or an older split), the
candidate never did. A candidate must beat it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pngnn.core.constants import LIKE_THRESHOLD
from pngnn.core.errors import PngnnError
from pngnn.core.settings import Settings
from pngnn.data.split import SplitData
from pngnn.evaluation.metrics import recall_at_k
from pngnn.tracking.registry import PRODUCTION, Promotion, client, model_name, production_version, version_of_run
from pngnn.tracking.serving import BLOCK, Recommender

HOLDOUT_K = 20
HOLDOUT_METRIC = f"holdout_recall_at_{HOLDOUT_K}"


@dataclass(frozen=True)
class Holdout:
    """A split's validation likes and train pairs in the dataset's own ids (as the models serve them)."""

    user_ids: np.ndarray  # [n_users] id of each user_idx
    item_ids: np.ndarray  # [n_items] id of each item_idx
    split: SplitData

    @classmethod
    def of(cls, split: SplitData, users: pd.DataFrame, items: pd.DataFrame) -> Holdout:
        """``users`` (user_id, user_idx) and ``items`` (item_id, item_idx) as ``catalog`` gives them."""
        user_ids = np.empty(split.n_users, dtype=object)
        user_ids[users["user_idx"].to_numpy(np.int64)] = users["user_id"].to_numpy(object)
        item_ids = np.empty(split.n_items, dtype=object)
        item_ids[items["item_idx"].to_numpy(np.int64)] = items["item_id"].to_numpy(object)
        return cls(user_ids, item_ids, split)

    def likes(self) -> tuple[np.ndarray, np.ndarray]:
        """(user_idx, item_idx) of the validation likes; an error when the split has none."""
        threshold = self.split.like_threshold if self.split.like_threshold is not None else LIKE_THRESHOLD
        likes = self.split.valid.positive(threshold)
        if not len(likes):
            raise PngnnError(f"split {self.split.seed} of {self.split.dataset} has no validation likes to compare "
                             "models on", "draw it with a validation part (valid_fraction > 0)")
        return likes.users, likes.items


def _positions(known: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position of each ``wanted`` id in ``known`` (-1 when absent); ids compared as text when
    either side is text (a user's own ids), else as integers (MovieLens)."""
    as_text = known.dtype == object or wanted.dtype == object
    known = known.astype(str) if as_text else known.astype(np.int64)
    wanted = wanted.astype(str) if as_text else wanted.astype(np.int64)
    if not len(known):
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(known, kind="stable")
    pos = np.clip(np.searchsorted(known[order], wanted), 0, len(known) - 1)
    return np.where(known[order][pos] == wanted, order[pos], -1)


def _is_member(codes: np.ndarray, sorted_codes: np.ndarray) -> np.ndarray:
    pos = np.clip(np.searchsorted(sorted_codes, codes), 0, max(len(sorted_codes) - 1, 0))
    return sorted_codes[pos] == codes if len(sorted_codes) else np.zeros(codes.shape, bool)


def holdout_recall(model: Recommender, holdout: Holdout, k: int = HOLDOUT_K) -> tuple[np.ndarray, np.ndarray]:
    """(user_idx, recall@k) of every validation user with a like; NaN for users ``model`` does not know."""
    like_users, like_items = holdout.likes()
    users = np.unique(like_users)
    n_items = holdout.split.n_items
    liked = np.unique(like_users * n_items + like_items)
    n_liked = np.bincount(np.searchsorted(users, like_users), minlength=len(users))
    rows = _positions(model.user_ids, holdout.user_ids[users])
    col_of_item = _positions(model.item_ids, holdout.item_ids)  # current item_idx -> the model's column
    item_of_col = np.full(model.factors.n_items, -1, dtype=np.int64)
    item_of_col[col_of_item[col_of_item >= 0]] = np.flatnonzero(col_of_item >= 0)
    train = holdout.split.train
    out = np.full(len(users), np.nan)
    known = np.flatnonzero(rows >= 0)
    kk = min(k, model.factors.n_items)
    for start in range(0, len(known), BLOCK):
        block = known[start:start + BLOCK]
        scores = np.array(model.factors.scores(rows[block]), dtype=np.float32)
        rated = np.isin(train.users, users[block])
        t_rows, t_cols = np.searchsorted(users[block], train.users[rated]), col_of_item[train.items[rated]]
        scores[t_rows[t_cols >= 0], t_cols[t_cols >= 0]] = -np.inf  # rated in this split's train part
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        top_items = item_of_col[top]
        hits = np.zeros((len(block), k), dtype=bool)
        hits[:, :kk] = (np.isfinite(np.take_along_axis(scores, top, axis=1)) & (top_items >= 0)
                        & _is_member(users[block][:, None] * n_items + top_items, liked))
        out[block] = recall_at_k(hits, n_liked[block], k)
    return users, out


def load_recommender(settings: Settings, name: str, version: str) -> Recommender:
    """A registered version as served (the pyfunc's arrays)."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_uri)
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model().recommender


def promote_on_holdout(settings: Settings, dataset: str, method: str, run_id: str, holdout: Holdout) -> Promotion:
    """Alias ``production`` -> the run's version when it beats production on the holdout (users
    both know; ties keep production; no production yet: promoted). The values go to the candidate
    run as ``holdout_recall_at_20`` and ``production_holdout_recall_at_20``."""
    name = model_name(dataset, method)
    mlf = client(settings)
    candidate = version_of_run(settings, dataset, method, run_id)
    _, mine = holdout_recall(load_recommender(settings, name, candidate), holdout)
    current = production_version(mlf, name)
    theirs = None
    if current is not None:
        _, theirs = holdout_recall(load_recommender(settings, name, str(current.version)), holdout)
    both = ~np.isnan(mine) if theirs is None else ~np.isnan(mine) & ~np.isnan(theirs)
    if not both.any():
        raise PngnnError(f"no validation user of {dataset} split {holdout.split.seed} is known to both "
                         f"{name} v{candidate} and production", "keep production; retrain on a split that shares users")
    value = float(mine[both].mean())
    current_value = None if theirs is None else float(theirs[both].mean())
    promoted = current_value is None or value > current_value
    if promoted:
        mlf.set_registered_model_alias(name, PRODUCTION, candidate)
    mlf.log_metric(run_id, HOLDOUT_METRIC, value)
    if current_value is not None:
        mlf.log_metric(run_id, f"production_{HOLDOUT_METRIC}", current_value)
    mlf.log_metric(run_id, "holdout_users", int(both.sum()))
    return Promotion(name, candidate, value, None if current is None else str(current.version), current_value,
                     promoted, HOLDOUT_METRIC)
