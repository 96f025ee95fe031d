"""Typed settings and named profiles.

Two kinds of settings live here:

* ``Settings``: *where* things are (data cache, DuckDB file, MLflow store). They come
  from environment variables so that tests, CI and docker-compose can redirect them
  without touching code.
* ``TrainConfig``: *what* is trained. Named profiles (``quick``, ``paper``) bundle the
  hyperparameters; ``paper`` is the setting of the PN-GNN paper (dim 64, Adam lr 5e-3,
  batch 4096, 60 epochs, L2 0.05, 4 layers, threshold 3.5, 40 negatives).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pngnn.errors import PngnnError

DatasetName = Literal["ml-100k", "ml-1m"]
DATASETS: tuple[str, ...] = ("ml-100k", "ml-1m")
KS: tuple[int, ...] = (5, 10, 15, 20)
VALID_METRICS: tuple[str, ...] = tuple(f"{m}@{k}" for m in ("ndcg", "recall", "precision") for k in KS)
# LLM augmentation: a split whose prompts are more than this share without a usable answer
# fails (``pngnn.augment.pipeline.check_failures``): the few edges left would pass for an
# LLM-augmented graph.
DEFAULT_MAX_FAILED_SHARE = 0.5


def _env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name, default)).expanduser()


@dataclass(frozen=True)
class Settings:
    """Locations of the embedded defaults; every one can be overridden by env var."""

    data_dir: Path = field(default_factory=lambda: _env_path("PNGNN_DATA_DIR", "~/.cache/pngnn/movielens"))
    db_path: Path = field(default_factory=lambda: _env_path("PNGNN_DB", "pngnn-data/pngnn.duckdb"))
    mlflow_uri: str = field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///pngnn-data/mlflow.db")
    )
    # Tuned profiles (`pngnn tune --save-as NAME` writes NAME.json here; the committed ones live in
    # the repository's profiles/ folder, the default when run from its root).
    profiles_dir: Path = field(default_factory=lambda: _env_path("PNGNN_PROFILES_DIR", "profiles"))

    @property
    def studies_dir(self) -> Path:
        """Optuna journals of studies in progress (``pngnn tune`` resumes them), beside the DuckDB file."""
        return self.db_path.parent / "studies"

    @classmethod
    def from_env(cls) -> Settings:
        return cls()


# The Dual-BPR readings (pngnn.losses): "graded" and "weighted" train on positive pairs,
# each with a disliked item of the same user; the others on every rated pair.
DUAL_BPR_VARIANTS = ("ordered", "siren", "sign", "graded", "weighted")
DISLIKED_PAIR_VARIANTS = ("graded", "weighted")
PAIR_SAMPLINGS = ("edges", "users")
RATING_SETS = ("all", "liked")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run, for every method (each reads its own fields:
    ``pngnn.methods.METHOD_SETTINGS``)."""

    dim: int = 64
    layers: int = 4
    lr: float = 5e-3
    batch_size: int = 4096
    epochs: int = 60
    l2: float = 0.05
    n_neg: int = 40
    threshold: float = 3.5
    neg_exponent: float = 0.75
    # PN-GNN: Dual-BPR reading (see pngnn.losses), the feedback-aware coefficient b, and whether
    # the attention module fuses the branches (False: fixed 0.5/0.5, the ablation). Default = the
    # best measured (README, "PN-GNN"): on ML-1M split 1 "weighted" with b = 4 beat LightGCN on
    # every column; b = 2, "siren", "ordered", "graded" and no attention all fell below it.
    dual_bpr: Literal["ordered", "siren", "sign", "graded", "weighted"] = "weighted"
    b: float = 4.0
    attention: bool = True
    # Which ratings form the LightGCN graph: "positive" (r > threshold) or "all".
    lightgcn_graph: Literal["positive", "all"] = "positive"
    # How an epoch draws its training pairs (pngnn.sampling.EpochPairOrder): "users" (default)
    # draws as many pairs as there are, each user equally likely, then one of the user's pairs:
    # the sampler of LightGCN's reference code. "edges" visits every pair once in random order.
    # On ML-1M (3 splits) "users" lifted R@20 by 3-3.5% for LightGCN and PN-GNN alike (README, "Results").
    pair_sampling: Literal["edges", "users"] = "users"
    # Evaluate on the validation part every N epochs (0: never); stop after `patience`
    # evaluations without improvement of `valid_metric` (0: train all epochs, report the last).
    eval_every: int = 0
    patience: int = 0
    valid_metric: str = "recall@20"
    seed: int = 0
    # EASE (Steck 2019) and PN-EASE (pngnn.models.linear): the ridge penalty lambda; which
    # ratings form EASE's X ("all": every rating says "watched"; "liked": only r > threshold);
    # PN-EASE's weight of a disliked rating as input, and of its predicted-disliked block in the score
    # (defaults picked on ML-1M split 1's validation part; the tuned profiles kept them, README).
    ease_lambda: float = 500.0
    ease_ratings: Literal["all", "liked"] = "all"
    disliked_input: float = 1.0
    disliked_score: float = 0.25
    # iALS (implicit.als.AlternatingLeastSquares, Hu et al. 2008): factors, L2, confidence
    # weight alpha (c = 1 + alpha), sweeps, and which ratings are the observed entries. Defaults:
    # the ML-1M studies' choice on validation, rounded (profiles/ials-ml-1m.json); implicit's own
    # defaults (128 factors, reg 0.01, alpha 1) are a far weaker baseline.
    ials_factors: int = 64
    ials_reg: float = 80.0
    ials_alpha: float = 10.0
    ials_iterations: int = 15
    ials_ratings: Literal["all", "liked"] = "liked"

    def __post_init__(self) -> None:
        if self.dual_bpr not in DUAL_BPR_VARIANTS:
            raise PngnnError(
                f"unknown Dual-BPR variant '{self.dual_bpr}'; choose one of {', '.join(DUAL_BPR_VARIANTS)}"
            )
        if self.lightgcn_graph not in ("positive", "all"):
            raise PngnnError(f"unknown LightGCN graph '{self.lightgcn_graph}'; choose positive or all")
        if self.pair_sampling not in PAIR_SAMPLINGS:
            raise PngnnError(
                f"unknown pair sampling '{self.pair_sampling}'; choose one of {', '.join(PAIR_SAMPLINGS)}"
            )
        if self.valid_metric not in VALID_METRICS:
            raise PngnnError(
                f"unknown validation metric '{self.valid_metric}'; choose one of {', '.join(VALID_METRICS)}"
            )
        for name in ("ease_ratings", "ials_ratings"):
            if getattr(self, name) not in RATING_SETS:
                raise PngnnError(f"unknown {name} '{getattr(self, name)}'; choose one of {', '.join(RATING_SETS)}")
        for name in ("ease_lambda", "disliked_input", "ials_reg", "ials_alpha"):
            if not getattr(self, name) > 0:
                raise PngnnError(f"training setting {name}={getattr(self, name)} must be > 0 (e.g. "
                                 f"{getattr(TrainConfig, name)})")
        for name in ("dim", "layers", "batch_size", "epochs", "n_neg", "ials_factors", "ials_iterations"):
            if getattr(self, name) < 1:
                raise PngnnError(f"training setting {name}={getattr(self, name)} must be at least 1")
        if self.lr <= 0 or self.l2 < 0 or self.b < 0:
            raise PngnnError(f"lr ({self.lr}) must be > 0, b ({self.b}) and l2 ({self.l2}) >= 0")
        if self.dual_bpr == "weighted" and self.b <= 0:
            raise PngnnError(f"the weighted Dual-BPR reading weighs disliked items 1/b: b must be > 0, got {self.b}")

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        unknown = set(overrides) - set(asdict(self))
        if unknown:
            raise PngnnError(
                f"unknown training setting(s) {sorted(unknown)}; valid names are {sorted(asdict(self))}"
            )
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    """A named bundle: dataset, split seeds and training hyperparameters.

    Tuned profiles (``pngnn.profiles``) also name the method they were tuned for and may hold
    one configuration per split seed (each split tuned on its own validation part)."""

    name: str
    dataset: str
    seeds: tuple[int, ...]
    train: TrainConfig
    test_fraction: float = 0.2
    valid_fraction: float = 0.0
    method: str | None = None
    per_seed: Mapping[int, TrainConfig] = field(default_factory=dict)

    def config_for(self, seed: int) -> TrainConfig:
        return self.per_seed.get(seed, self.train)


PROFILES: dict[str, Profile] = {
    # Finishes in a few minutes on 2 CPU cores: ML-100K, one split, a short schedule.
    "quick": Profile(
        name="quick",
        dataset="ml-100k",
        seeds=(1,),
        train=TrainConfig(epochs=30, batch_size=2048, n_neg=10, l2=1e-3),
    ),
    # The paper's settings on ML-1M, three random 80/20 splits.
    "paper": Profile(name="paper", dataset="ml-1m", seeds=(1, 2, 3), train=TrainConfig()),
}


def get_profile(name: str, settings: Settings | None = None) -> Profile:
    """A built-in profile, else a tuned one saved under ``settings.profiles_dir``."""
    if name in PROFILES:
        return PROFILES[name]
    from pngnn.profiles import load_saved_profile, saved_profile_names

    settings = settings or Settings.from_env()
    path = settings.profiles_dir / f"{name}.json"
    if path.is_file():
        return load_saved_profile(path)
    known = sorted(PROFILES) + saved_profile_names(settings.profiles_dir)
    raise PngnnError(f"unknown profile '{name}'; choose one of {known} (tuned profiles are read from "
                     f"{settings.profiles_dir}, set PNGNN_PROFILES_DIR)")


def check_dataset(name: str) -> str:
    if name not in DATASETS:
        raise PngnnError(f"unknown dataset '{name}'; choose one of {list(DATASETS)}")
    return name
