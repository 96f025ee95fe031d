"""Top-K recommendations for one user from a registered model (pure library, no Prefect).

The model is the ``production`` version of ``pngnn-<dataset>-<method>`` in the MLflow
registry, else its latest version (``pngnn.registry.resolve``). The MovieLens user id is
mapped to the model's row (``user_idx``) through the DuckDB ``users`` table; the items
the user rated in the model's training data (train and validation parts of the split it
was trained on) are masked, so only unseen movies are recommended.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from pngnn.config import check_dataset
from pngnn.errors import PngnnError
from pngnn.registry import PROMOTION_METRIC, ResolvedModel, client, registered_methods, resolve
from pngnn.settings import Settings
from pngnn.store import Store

# Tie-break order when registered methods score the same.
METHOD_PREFERENCE = ("pn-ease", "llm-pngnn", "pngnn", "ease", "ials", "llm-lightgcn", "lightgcn", "mostpop")


@dataclass(frozen=True)
class Recommendations:
    user_id: int
    dataset: str
    model: ResolvedModel
    split_seed: int | None
    n_masked: int
    items: pl.DataFrame  # rank, item_id, title, score

    def lines(self) -> list[str]:
        head = (f"top {self.items.height} for user {self.user_id} ({self.dataset}) from {self.model.describe()}, "
                f"{self.n_masked} rated movies masked")
        rows = [f"{r['rank']:>3}. {r['title']}  {r['score']:.4f}" for r in self.items.iter_rows(named=True)]
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


def user_index(store: Store, dataset: str, user_id: int) -> int:
    """MovieLens user id -> the model's row; a clear error for an unknown id."""
    idx = store.scalar(
        "SELECT user_idx FROM users WHERE dataset = $dataset AND user_id = $user_id AND user_idx IS NOT NULL",
        dataset=dataset, user_id=user_id,
    )
    if idx is None:
        lo, hi, n = store.query_sql(
            "SELECT min(user_id), max(user_id), count(*) FROM users WHERE dataset = $dataset AND user_idx IS NOT NULL",
            dataset=dataset,
        ).row(0)
        if not n:
            raise PngnnError(f"dataset '{dataset}' is not in {store.path}; run `pngnn ingest {dataset}` first")
        raise PngnnError(
            f"unknown user {user_id} in {dataset}: valid user ids are {n} ids from {lo} to {hi}; list them with "
            f"`duckdb {store.path} \"SELECT user_id FROM users WHERE dataset = '{dataset}' ORDER BY user_id\"`"
        )
    return int(idx)


def masked_items(store: Store, dataset: str, user_id: int, split_seed: int | None) -> np.ndarray:
    """item_idx of the user's training items: train+valid of the model's split, else every rating."""
    if split_seed is not None and store.scalar(
        "SELECT count(*) FROM split_meta WHERE dataset = $dataset AND seed = $seed", dataset=dataset, seed=split_seed
    ):
        frame = store.query_file("user_train_items", dataset=dataset, seed=split_seed, user_id=user_id)
    else:
        frame = store.query_file("user_rated_items", dataset=dataset, user_id=user_id)
    return frame["item_idx"].to_numpy().astype(np.int64)


def top_k(scores: torch.Tensor, masked: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(item_idx, score) of the k best unmasked items, best first."""
    scores = scores.detach().float().clone()
    if len(masked):
        scores[torch.from_numpy(masked)] = -torch.inf
    k = min(k, int(torch.isfinite(scores).sum()))
    values, index = torch.topk(scores, k)
    return index.numpy(), values.numpy()


def recommend(settings: Settings, user_id: int, k: int = 10, dataset: str = "ml-100k",
              method: str | None = None) -> Recommendations:
    """The user's top-k unseen movies with scores, from the registered model."""
    import mlflow

    check_dataset(dataset)
    if k < 1:
        raise PngnnError(f"k must be at least 1, got {k}")
    if not settings.db_path.is_file():
        raise PngnnError(f"DuckDB file {settings.db_path} does not exist; run `pngnn ingest {dataset}` or set PNGNN_DB")
    with Store(settings.db_path, read_only=True) as store:
        idx = user_index(store, dataset, user_id)
        resolved = resolve(settings, dataset, method or pick_method(settings, dataset))
        tags = mlflow.MlflowClient().get_run(resolved.run_id).data.tags
        split_seed = int(tags["split"]) if tags.get("split", "").isdigit() else None
        masked = masked_items(store, dataset, user_id, split_seed)
        model = mlflow.pytorch.load_model(resolved.uri)
        if idx >= model.n_users:
            raise PngnnError(f"{resolved.describe()} knows {model.n_users} users but user {user_id} is row {idx} in "
                             f"{settings.db_path}; retrain it on this DuckDB file")
        scores = model.full_sort_predict(torch.tensor([idx]))[0]
        items, values = top_k(scores, masked, k)
        titles = store.query_sql(
            "SELECT item_idx, item_id, title FROM items WHERE dataset = $dataset AND item_idx IS NOT NULL",
            dataset=dataset,
        )
    ranked = pl.DataFrame({"rank": np.arange(1, len(items) + 1), "item_idx": items.astype(np.int32),
                           "score": values.astype(np.float64)})
    ranked = ranked.join(titles.with_columns(pl.col("item_idx").cast(pl.Int32)), on="item_idx", how="left")
    ranked = ranked.sort("rank").select("rank", "item_id", "title", "score")
    return Recommendations(user_id, dataset, resolved, split_seed, len(masked), ranked)
