"""The registered model: an MLflow pyfunc that MLflow's own tooling loads and serves.

``mlflow models serve -m models:/pngnn-ml-100k-lightgcn@production --env-manager local``
answers ``POST /invocations`` with a frame of ``user_id`` (MovieLens ids) and an optional
``k`` column (in every row or in none: MLflow types a column with gaps as floats and refuses it),
or ``k`` as an inference parameter for the whole request (default 10): one row per
recommendation, ``user_id, rank, item_id, title, score``, best first, the user's training items
left out. A user the model does not know gets the most rated items (parameter ``unknown_users``,
``popular``), so one new user does not fail a batch; ``unknown_users: error`` refuses them.
``pngnn recommend`` loads the same model through ``mlflow.pyfunc.load_model`` and calls the same
``predict``: one scoring path.

What is logged: the model's score arrays, seen-item index, id maps and titles as NumPy and
Parquet files (``pngnn.tracking.serving``), a signature and an input example, the ``pngnn`` package
as ``code_paths`` (so the model loads where pngnn is not installed), and explicit pinned
requirements (MLflow's inference of them imports the model and takes seconds). The Python
model is logged as code (``pngnn/tracking/pyfunc_model.py``), so nothing is pickled.

This module imports MLflow (the model class must subclass ``PythonModel``); only the
functions that log a model and the CLI's ``recommend`` import it, lazily. It is imported
inside the served model too, so it needs NumPy, pandas and MLflow only: what training needs
(torch, DuckDB) is imported inside ``log_recommender``.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import AnyType

import pngnn
from pngnn.core.errors import UserError
from pngnn.tracking.serving import DEFAULT_K, FORMAT_VERSION, OUTPUT_COLUMNS, UNKNOWN_POLICIES, Recommender

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

    from pngnn.core.settings import Settings
    from pngnn.data.split import SplitData
    from pngnn.models.base import GraphRecommender

ARTIFACT = "recommender"  # the artifacts key (and folder) of the recommender's files
SERVING_REQUIREMENTS = ("mlflow", "numpy", "pandas", "pyarrow")


class RecommenderModel(PythonModel):
    """Top-k unseen movies for each requested user, from the logged arrays."""

    recommender: Recommender

    def load_context(self, context: Any) -> None:
        self.recommender = Recommender.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """A bad request (no ``user_id``, k < 1, an unknown user under ``unknown_users: error``) is an
        ``INVALID_PARAMETER_VALUE`` MLflow error, which the scoring server answers with 400 and the
        message; the pngnn error stays its ``__cause__`` for Python callers."""
        params = params or {}
        try:
            k = _whole(pd.Series([params.get("k", DEFAULT_K)]), "k", f"send k as an integer >= 1, or leave it "
                       f"out for {DEFAULT_K}")[0]
            user_ids, ks = parse_request(model_input, self.recommender.string_ids, default_k=int(k))
            return self.recommender.recommend(user_ids, ks, params.get("unknown_users", UNKNOWN_POLICIES[0]))
        except UserError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc


def parse_request(frame: Any, string_ids: bool = False, default_k: int = DEFAULT_K) -> tuple[np.ndarray, np.ndarray]:
    """(user ids, k per user) from a request frame: ``user_id`` required, ``k`` optional (missing:
    ``default_k``); the ids are whole numbers for MovieLens, strings (the user's own) for a user's dataset.

    MLflow enforces the signature first when there is one; this checks again for callers of
    the Python model itself, and for the values a schema cannot rule out (nulls, k < 1)."""
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    if "user_id" not in frame.columns:
        raise UserError(f"the request has no user_id column (columns: {list(map(str, frame.columns))})",
                        'send a frame such as {"dataframe_records": [{"user_id": 1, "k": 10}]}')
    if string_ids:
        if frame["user_id"].isna().any():
            raise UserError("user_id is missing in some rows", "send one of your user ids in every row")
        user_ids = frame["user_id"].astype(str).to_numpy(object)
    else:
        user_ids = _whole(frame["user_id"], "user_id", "send MovieLens user ids as integers")
    if "k" not in frame.columns:
        return user_ids, np.full(len(frame), default_k, np.int64)
    return user_ids, _whole(frame["k"], "k", f"send k as an integer >= 1, or leave it out for {default_k}",
                            default=default_k)


def _whole(column: pd.Series, name: str, fix: str, default: int | None = None) -> np.ndarray:
    """The column as int64; nulls become ``default`` (an error without one), fractions an error."""
    values = pd.to_numeric(column, errors="coerce")
    if default is not None:
        values = values.where(column.notna(), default)
    bad = values.isna() | (values != values.round())
    if bad.any():
        raise UserError(f"{name} must be a whole number, got {column[bad].tolist()[:5]}", fix)
    return values.to_numpy(np.int64)


def signature(string_ids: bool = False) -> ModelSignature:
    """Ids are numbers for MovieLens and strings for a user's own data (whatever their ids were).

    MovieLens' input ``user_id`` is declared ``any``, not ``long``: MLflow's scoring server casts a
    JSON body to the declared type before ``predict`` runs, and its cast to int64 truncates, so a
    ``long`` column turned ``1.5`` into user 1. Under ``any`` the value arrives as sent and
    ``parse_request`` refuses what is not a whole number."""
    ids = "string" if string_ids else "long"
    inputs = Schema([ColSpec("string" if string_ids else AnyType(), "user_id"), ColSpec("long", "k", required=False)])
    outputs = Schema([ColSpec(ids if name in ("user_id", "item_id") else kind, name)
                      for name, kind in OUTPUT_COLUMNS.items()])
    params = ParamSchema([ParamSpec("k", "long", DEFAULT_K), ParamSpec("unknown_users", "string", UNKNOWN_POLICIES[0])])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def requirements() -> list[str]:
    """What the served model imports, pinned to this environment's versions (no torch, no DuckDB)."""
    return [f"{name}=={version(name)}" for name in SERVING_REQUIREMENTS]


def catalog(settings: Settings, dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(users: user_id, user_idx; items: item_id, item_idx, title) of the dataset's indexed rows."""
    from pngnn.data.store import Store

    with Store(settings.db_path, read_only=True) as store:
        users = store.query_file("catalog_users", dataset=dataset).to_pandas()
        items = store.query_file("catalog_items", dataset=dataset).to_pandas()
    if users["external_id"].notna().any():  # a user's own data: serve and answer in its ids
        users["user_id"] = users["external_id"].astype(object)
        items["item_id"] = items["external_id"].astype(object)
    return users.drop(columns="external_id"), items.drop(columns="external_id")


def build_recommender(model: GraphRecommender, split: SplitData, settings: Settings) -> Recommender:
    """The served form of a model trained on ``split``: its factors, the split's train and
    validation items as the mask (what evaluation masks), the DuckDB file's ids and titles."""
    from pngnn.training.methods import seen_items

    seen = seen_items(split)
    users, items = catalog(settings, split.dataset)
    return Recommender.build(model.score_factors(), seen.users, seen.items, users, items)


def log_recommender(model: GraphRecommender, split: SplitData, settings: Settings, method: str,
                    registered_name: str | None = None) -> ModelInfo:
    """Log ``model`` as the pyfunc ``model`` of the active run (and register it under
    ``registered_name``, a new version)."""
    recommender = build_recommender(model, split, settings)
    ids = recommender.user_ids[:2]
    example = pd.DataFrame({"user_id": ids, "k": np.full(len(ids), DEFAULT_K)})
    metadata = {"pngnn_format": FORMAT_VERSION, "method": method, "dataset": split.dataset,
                "split_seed": split.seed, "n_users": recommender.factors.n_users,
                "n_items": recommender.factors.n_items}
    with tempfile.TemporaryDirectory() as tmp:
        folder = recommender.save(Path(tmp) / ARTIFACT)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={ARTIFACT: str(folder)},
            code_paths=[str(Path(pngnn.__file__).parent)],
            signature=signature(recommender.string_ids),
            input_example=example,
            pip_requirements=requirements(),
            metadata=metadata,
            registered_model_name=registered_name,
        )
