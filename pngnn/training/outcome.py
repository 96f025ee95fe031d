"""One method trained on one split and evaluated by full ranking on its test part: ``RunOutcome``.

What ``pngnn train``, the tuned test runs, the what-if and the Prefect model task share; tracking
(MLflow) wraps it in ``pngnn.tracking.runs``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Unpack

import numpy as np
import polars as pl

from pngnn.core.config import TrainConfig
from pngnn.data.split import SplitData
from pngnn.evaluation.evaluate import evaluate
from pngnn.models.base import GraphRecommender
from pngnn.training.methods import for_dataset, seen_items, train_method
from pngnn.training.train import TrainHooks, TrainResult


@dataclass
class RunOutcome:
    method: str
    dataset: str
    seed: int
    metrics: dict[str, float]
    train: TrainResult
    config: TrainConfig
    eval_seconds: float
    run_id: str | None = None  # the MLflow run, when tracked
    edges: dict[str, int | str] = field(default_factory=dict)  # the LLM edges trained on (count, hash)
    split: dict[str, Any] = field(default_factory=dict)  # how a split by time was drawn; empty for random
    per_user: pl.DataFrame | None = None  # each evaluated user's metrics (paired tests: pngnn report --compare)

    def summary(self, part: str = "") -> str:
        """The run in one line, as ``pngnn train``, the tuned test runs (``part`` " test") and the flows print it."""
        m, epochs = self.metrics, f"{len(self.train.history)} epochs, " if self.train.history else ""
        return (f"{self.method} {self.dataset} seed {self.seed}{part}: P@5 {m['precision@5']:.4f} P@20 "
                f"{m['precision@20']:.4f} R@20 {m['recall@20']:.4f} NDCG@20 {m['ndcg@20']:.4f} "
                f"({epochs}{self.train.seconds:.0f}s)")

    def record(self) -> dict[str, Any]:
        """The results JSON; PN-GNN runs add where the attention put users and items."""
        summary = getattr(self.train.model, "attention_summary", None)
        record = {
            "dataset": self.dataset,
            "method": self.method,
            "seed": self.seed,
            "metrics": self.metrics,
            "config": self.config.to_dict(),
            "epochs_run": len(self.train.history),
            "best_epoch": self.train.best_epoch,
            "train_seconds": round(self.train.seconds, 2),
            "eval_seconds": round(self.eval_seconds, 2),
            "loss_curve": [round(e.loss, 6) for e in self.train.history],
        }
        record.update(self.edges)
        if self.split:  # a split by time; random records stay as they always were
            record["split"] = self.split
        if summary is not None:
            record["attention"] = {k: round(v, 4) for k, v in summary().items()}
        return record


def evaluate_step(model: GraphRecommender, split: SplitData, threshold: float,
                  per_user: dict[str, np.ndarray] | None = None) -> tuple[dict[str, float], float]:
    """Full-ranking metrics on the test part, train and validation items masked, overall and by
    segment (``<segment>/<metric>``, ``pngnn.evaluation.segments``); (metrics, seconds).
    ``per_user``: filled with each evaluated user's metrics (``evaluate``)."""
    t0 = time.perf_counter()
    metrics = evaluate(model.scorer(), split.n_items, seen_items(split), split.test, threshold, segments=True,
                       per_user=per_user)
    return metrics, time.perf_counter() - t0


def per_user_frame(per_user: dict[str, np.ndarray]) -> pl.DataFrame:
    """The per-user metrics as a table: ``user`` (the model row) and one float32 column a metric."""
    return pl.DataFrame({name: values.astype(np.int32 if name == "user" else np.float32)
                         for name, values in per_user.items()})


def train_evaluate_step(split: SplitData, method: str, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> RunOutcome:
    """Train one method on one split (``train_method``: test ratings are never seen) and evaluate
    it by full ranking on the test part."""
    result = train_method(method, split, cfg, **hooks)
    cfg = for_dataset(cfg, split)
    per_user: dict[str, np.ndarray] = {}
    metrics, seconds = evaluate_step(result.model, split, cfg.threshold, per_user)
    return RunOutcome(method, split.dataset, split.seed, metrics, result, cfg, seconds,
                      edges=split.augmented_digest(), split=split_record(split), per_user=per_user_frame(per_user))


def split_record(split: SplitData) -> dict[str, Any]:
    """How a split by time was drawn, for its runs' records; empty for the paper's random splits."""
    if split.protocol == "random":
        return {}
    return {"protocol": split.protocol, **({"last_n": split.last_n} if split.protocol == "last" else {})}
