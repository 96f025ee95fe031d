"""Top-K recommendations for one user from a registered model (pure library, no Prefect).

The model is the ``production`` version of ``pngnn-<dataset>-<method>`` in the MLflow
registry, else its latest version (``pngnn.tracking.registry.resolve``), loaded as the MLflow pyfunc
that ``mlflow models serve`` serves (``pngnn.tracking.pyfunc``): one scoring path for the command
line and the server. The model carries its id maps, titles and the items each user rated
in its training data (masked, so only unseen movies are recommended); no DuckDB file needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import pandas as pd
import polars as pl

from pngnn.core.config import DATASETS
from pngnn.core.errors import PngnnError, UserError
from pngnn.core.settings import Settings
from pngnn.data.user_data import check_name
from pngnn.tracking.registry import PROMOTION_METRIC, ResolvedModel, client, registered_methods, resolve
from pngnn.tracking.serving import UnknownUsers

if TYPE_CHECKING:
    from mlflow.pyfunc import PyFuncModel

# Tie-break order when registered methods score the same.
METHOD_PREFERENCE = ("weighted-ease", "llm-weighted-ease", "pn-ease", "llm-pn-ease", "llm-pngnn", "pngnn", "edlae",
                     "ease", "ials", "gf-cf", "llm-lightgcn", "lightgcn", "mostpop")


@dataclass(frozen=True)
class Recommendations:
    user_id: int | str  # a MovieLens id, or a user's own id as their data spells it
    dataset: str
    model: ResolvedModel
    split_seed: int | None
    n_masked: int
    items: pl.DataFrame  # rank, item_id, title, score

    def lines(self) -> list[str]:
        head = (f"top {self.items.height} for user {self.user_id} ({self.dataset}) from {self.model.describe()}, "
                f"{self.n_masked} rated items masked")
        rows = [f"{r['rank']:>3}. {r['title'] or r['item_id']}  {r['score']:.4f}"
                for r in self.items.iter_rows(named=True)]
        return [head, *rows]


def pick_method(settings: Settings, dataset: str) -> str:
    """The registered method whose served version (production, else latest) has the highest
    recall@20 on its test split; ties go by ``METHOD_PREFERENCE``. Measured, not assumed: which
    method wins depends on the dataset and on what was trained (README, "Results")."""
    available = registered_methods(settings, dataset)
    if available:
        mlf = client(settings)

        def score(method: str) -> tuple[float, int]:
            run_id = resolve(settings, dataset, method).run_id
            value = mlf.get_run(run_id).data.metrics.get(PROMOTION_METRIC, float("-inf"))
            order = METHOD_PREFERENCE.index(method) if method in METHOD_PREFERENCE else len(METHOD_PREFERENCE)
            return value, -order

        return max(available, key=score)
    raise PngnnError(
        f"no registered pngnn-{dataset}-* model in {settings.mlflow_uri}; train one first "
        "(`pngnn run` or `prefect deployment run 'pipeline/quick'`)"
    )


def load_served(resolved: ResolvedModel, method: str) -> PyFuncModel:
    """The registered version as MLflow serves it (``mlflow.pyfunc``); a clear error for a
    version logged before models were pyfuncs (a pickled torch module cannot be served)."""
    import mlflow

    model = mlflow.pyfunc.load_model(resolved.uri)
    if "pngnn_format" not in (model.metadata.metadata or {}):
        raise UserError(f"{resolved.describe()} was logged before pngnn models were served as MLflow pyfuncs",
                        f"train it again (`pngnn run --method {method}`) so a new version can be served")
    return model


def request_id(user_id: int | str, string_ids: bool, dataset: str) -> int | str:
    """The id as the model takes it: a user's own id as text, a MovieLens id as a whole number."""
    if string_ids:
        return str(user_id)
    try:
        return int(user_id)
    except ValueError:
        raise UserError(f"user id {user_id!r} is not a number, and {dataset}'s users are MovieLens ids",
                        "give a whole-number user id, e.g. --user 1") from None


def recommend(settings: Settings, user_id: int | str, k: int = 10, dataset: str = "ml-100k",
              method: str | None = None) -> Recommendations:
    """The user's top-k unseen movies with scores: the registered model's ``predict``, exactly
    what ``mlflow models serve`` answers for ``{"user_id": user_id, "k": k}``."""
    from mlflow.exceptions import MlflowException

    if dataset not in DATASETS:
        check_name(dataset)
    if k < 1:
        raise PngnnError(f"k must be at least 1, got {k}")
    method = method or pick_method(settings, dataset)
    resolved = resolve(settings, dataset, method)
    model = load_served(resolved, method)
    served = model.unwrap_python_model().recommender
    user_id = request_id(user_id, served.string_ids, dataset)
    try:
        # one user asked by name: an unknown one is an error, not the popular items a batch gets
        ranked = model.predict(pd.DataFrame({"user_id": [user_id], "k": [k]}), params={"unknown_users": "error"})
    except MlflowException as exc:
        if isinstance(exc.__cause__, UnknownUsers):
            raise UserError(f"{exc.__cause__.problem} ({resolved.describe()})",
                            f"list them with `duckdb {settings.db_path} \"SELECT user_id FROM users WHERE dataset = "
                            f"'{dataset}' ORDER BY user_id\"`") from exc
        raise PngnnError(f"{resolved.describe()} could not rank user {user_id}: {exc.message}") from exc
    split_seed = (model.metadata.metadata or {}).get("split_seed")
    items = pl.from_pandas(cast(pd.DataFrame, ranked)[["rank", "item_id", "title", "score"]])
    return Recommendations(user_id, dataset, resolved, split_seed, int(served.seen_counts([user_id])[0]), items)
