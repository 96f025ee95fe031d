"""One function per arrow of the pipeline, shared by the CLI and the Prefect tasks.

Each step opens the DuckDB file itself (short-lived connections), so steps can run in
separate processes (Prefect workers) and never pass data through ad-hoc files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Unpack

from pngnn import datasets
from pngnn.config import TrainConfig, check_dataset
from pngnn.errors import PngnnError
from pngnn.evaluate import evaluate
from pngnn.ingest import IngestResult, ingest
from pngnn.methods import seen_items, train_method
from pngnn.models.base import GraphRecommender
from pngnn.settings import LLMSettings, Settings
from pngnn.split import SplitData, create_split, load_split
from pngnn.store import Store
from pngnn.train import TrainHooks, TrainResult

log = logging.getLogger(__name__)


def ingest_step(settings: Settings, dataset: str, allow_download: bool = True) -> IngestResult:
    """MovieLens files -> DuckDB (ratings, items, users); a no-op when already there."""
    raw = datasets.load(check_dataset(dataset), settings.data_dir, allow_download)
    with Store(settings.db_path) as store:
        return ingest(store, raw)


def split_step(settings: Settings, dataset: str, seed: int, test_fraction: float = 0.2,
               valid_fraction: float = 0.0) -> dict[str, int]:
    """ratings -> splits(seed); reused when the same split already exists."""
    with Store(settings.db_path) as store:
        return create_split(store, dataset, seed, test_fraction, valid_fraction)


@dataclass(frozen=True)
class EdgeSource:
    """Which LLM edges a run trains on: those one model merged with one prompt version.

    A split may hold the edges of several LLMs and prompts (each merge keeps its own); a run
    tagged with one of them must train on that one's edges only."""

    model: str
    prompt_version: str

    @classmethod
    def of(cls, llm: LLMSettings | Mapping[str, Any], counts: Mapping[str, Any] | None = None) -> EdgeSource:
        """The edges an augmentation with ``llm`` merged: its model and prompt version (the current
        one unless set), or those its ``counts`` record (the name a server answered under)."""
        from pngnn.augment.prompts import PROMPT_VERSION

        llm, counts = LLMSettings.model_validate(llm), counts or {}
        return cls(str(counts.get("model") or llm.model),
                   str(counts.get("prompt_version") or llm.prompt_version or PROMPT_VERSION))

    def tags(self) -> dict[str, str]:
        """The MLflow tags of a run trained on these edges (read back by ``from_tags``)."""
        return {"llm_model": self.model, "prompt_version": self.prompt_version}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str] | None) -> EdgeSource:
        """The source named by a run's MLflow tags (``llm_model``, ``prompt_version``)."""
        tags = tags or {}
        if not tags.get("llm_model") or not tags.get("prompt_version"):
            raise PngnnError("an llm- method needs to know which LLM edges to train on (tags llm_model and "
                             f"prompt_version), got {dict(tags)}; run it through a flow that augments first")
        return cls(tags["llm_model"], tags["prompt_version"])


def load_split_step(settings: Settings, dataset: str, seed: int, edges: EdgeSource | None = None) -> SplitData:
    """A stored split; with ``edges``, plus the LLM edges that source merged for it (an error
    when it merged none: training on no edges would pass silently for an LLM run)."""
    with Store(settings.db_path) as store:
        split = load_split(store, dataset, seed)
        if edges is not None:
            from pngnn.augment.merge import load_augmented

            positive, negative = load_augmented(store, dataset, seed, edges.model, edges.prompt_version)
            if not len(positive) + len(negative):
                raise PngnnError(
                    f"no LLM edges of model '{edges.model}' (prompt {edges.prompt_version}) for {dataset} split "
                    f"{seed}; run `pngnn augment --dataset {dataset} --seed {seed} --model {edges.model}` first"
                )
            split = split.with_augmented(positive, negative)
            warn_partial_coverage(store, dataset, seed, edges)
    return split


def warn_partial_coverage(store: Store, dataset: str, seed: int, edges: EdgeSource) -> None:
    """One warning line when the LLM edges reach fewer users than the LLM was asked about:
    an LLM run on a handful of edges must not pass for one on the whole sample."""
    row = store.query_file("edge_coverage", dataset=dataset, seed=seed, model=edges.model,
                           prompt_version=edges.prompt_version).row(0, named=True)
    asked, answered, covered = row["asked"], row["answered"], row["covered"]
    if covered >= asked:
        return
    unanswered, dropped = asked - answered, max(0, answered - covered)
    # Only unanswered prompts are worth asking again; a dropped answer (its items already rated in
    # the split) comes back the same, so the line must not send the user to rerun for those.
    fix = (f"rerun `pngnn augment --dataset {dataset} --seed {seed} --model {edges.model}` to ask the failed prompts "
           "again" if unanswered else "every prompt was answered, so a rerun would not change it")
    log.warning("LLM edges of model '%s' (prompt %s) cover %d of the %d users asked on %s split %d (%d without a "
                "usable answer, %d whose answers were dropped by the merge); %s", edges.model, edges.prompt_version,
                covered, asked, dataset, seed, unanswered, dropped, fix)


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
        if summary is not None:
            record["attention"] = {k: round(v, 4) for k, v in summary().items()}
        return record


def evaluate_step(model: GraphRecommender, split: SplitData, threshold: float) -> tuple[dict[str, float], float]:
    """Full-ranking metrics on the test part, train and validation items masked, overall and by
    segment (``<segment>/<metric>``, ``pngnn.segments``); (metrics, seconds)."""
    t0 = time.perf_counter()
    metrics = evaluate(model.scorer(), split.n_items, seen_items(split), split.test, threshold, segments=True)
    return metrics, time.perf_counter() - t0


def train_evaluate_step(split: SplitData, method: str, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> RunOutcome:
    """Train one method on one split (``train_method``: test ratings are never seen) and evaluate
    it by full ranking on the test part."""
    result = train_method(method, split, cfg, **hooks)
    metrics, seconds = evaluate_step(result.model, split, cfg.threshold)
    return RunOutcome(method, split.dataset, split.seed, metrics, result, cfg, seconds,
                      edges=split.augmented_digest())
