"""Training configuration and named profiles.

``TrainConfig`` is *what* is trained. Named profiles (``quick``, ``paper``) bundle the
hyperparameters; ``paper`` is the setting of the PN-GNN paper (dim 64, Adam lr 5e-3,
batch 4096, 60 epochs, L2 0.05, 4 layers, threshold 3.5, 40 negatives). *Where* things are
(data, DuckDB, MLflow) comes from the environment: ``pngnn.core.settings``.

Each set of choices is one ``Literal`` type; its tuple of values, for validation and messages,
is derived from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

from pngnn.core.constants import LIKE_THRESHOLD, METRICS
from pngnn.core.errors import PngnnError

DATASETS: tuple[str, ...] = ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m")
# The dataset of every command and flow not told otherwise: the quick profile's, so `pngnn
# train`, `run`, `report` and `recommend` without --dataset all speak of the same data.
DEFAULT_DATASET = "ml-100k"
# torch and numpy take seeds up to 2**32 - 1
MAX_TRAIN_SEED = 2**32 - 1
# The paper's three random splits: the paper profile's, and what `pngnn split` and `pngnn
# augment` draw without --seed.
SPLIT_SEEDS: tuple[int, ...] = (1, 2, 3)

# The Dual-BPR readings (pngnn.models.losses): "graded" and "weighted" train on positive pairs,
# each with a disliked item of the same user; the others on every rated pair. "branch" scores
# each graph's pairs with its own branch (the paper's equations as PANE-GNN's code applies them).
DualBPR = Literal["ordered", "siren", "sign", "graded", "weighted", "branch"]
DUAL_BPR_VARIANTS: tuple[str, ...] = get_args(DualBPR)
DISLIKED_PAIR_VARIANTS = ("graded", "weighted")
LightGCNGraph = Literal["positive", "all"]
LIGHTGCN_GRAPHS: tuple[str, ...] = get_args(LightGCNGraph)
PairSampling = Literal["edges", "users"]
PAIR_SAMPLINGS: tuple[str, ...] = get_args(PairSampling)
RatingSet = Literal["all", "liked"]
RATING_SETS: tuple[str, ...] = get_args(RatingSet)
AugMode = Literal["graph", "triples"]
AUG_MODES: tuple[str, ...] = get_args(AugMode)
# How a split assigns ratings to train, validation and test (pngnn.data.protocols).
SplitProtocol = Literal["random", "temporal", "last"]
SPLIT_PROTOCOLS: tuple[str, ...] = get_args(SplitProtocol)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run, for every method (each reads its own fields:
    ``pngnn.training.methods.METHOD_SETTINGS``)."""

    dim: int = 64
    layers: int = 4
    lr: float = 5e-3
    batch_size: int = 4096
    # Graph models: at most this many optimiser steps an epoch (0: no cap, batch_size at any size).
    # Each step propagates the whole graph, so with a fixed batch an epoch costs steps x graph size:
    # quadratic in the ratings. Above max_batches x batch_size pairs the batch grows instead (the
    # learning rate by the square root of the growth, warmed up over the first epoch:
    # pngnn.training.schedule). 32: on ML-1M's three splits it trains within the paper profile's
    # split spread (docs/speed.md), and it keeps a 20M-rating epoch linear; the paper profile keeps
    # its own 256, which never binds on ML-1M, so it trains step for step as the paper says.
    max_batches: int = 32
    epochs: int = 60
    l2: float = 0.05
    n_neg: int = 40
    threshold: float = LIKE_THRESHOLD
    neg_exponent: float = 0.75
    # PN-GNN: Dual-BPR reading (see pngnn.models.losses), the feedback-aware coefficient b, and whether
    # the attention module fuses the branches (False: fixed 0.5/0.5, the ablation). The default is
    # the reading README's ablation ("PN-GNN") supports.
    dual_bpr: DualBPR = "weighted"
    b: float = 4.0
    attention: bool = True
    # Which ratings form the LightGCN graph: "positive" (r > threshold) or "all".
    lightgcn_graph: LightGCNGraph = "positive"
    # How an epoch draws its training pairs (pngnn.models.sampling.EpochPairOrder): "users" (default)
    # draws as many pairs as there are, each user equally likely, then one of the user's pairs:
    # the sampler of LightGCN's reference code. "edges" visits every pair once in random order
    # (the two compared: README, "Results").
    pair_sampling: PairSampling = "users"
    # llm- methods: how the LLM's edges enter training. "graph": as edges of the graphs (likes
    # positive, dislikes negative) and as training pairs; "triples": as training samples only (a
    # like is a BPR pair, a dislike PN-GNN's disliked item and never a negative), the adjacency
    # stays the train ratings' (LLMRec's choice: a wrong guess then never spreads through the graph).
    aug_mode: AugMode = "graph"
    # Evaluate on the validation part every N epochs (0: never); stop after `patience`
    # evaluations without improvement of `valid_metric` (0: train all epochs, report the last).
    eval_every: int = 0
    patience: int = 0
    valid_metric: str = "recall@20"
    seed: int = 0
    # EASE (Steck 2019) and PN-EASE (pngnn.models.linear): the ridge penalty lambda; which
    # ratings form EASE's X ("all": every rating says "watched"; "liked": only r > threshold);
    # PN-EASE's weight of a disliked rating as input, and of its predicted-disliked block in the score.
    ease_lambda: float = 500.0
    ease_ratings: RatingSet = "all"
    # EASE and PN-EASE on the N most-rated items only (0: every item): their n x n matrix is the
    # memory bill of a big catalogue (pngnn.models.gram); the other items are never recommended.
    ease_max_items: int = 0
    # Defaults of the positive/negative linear models: their ML-1M validation grids' choices
    # (results/tuning/ml-1m/{pn-ease,weighted-ease}/; docs/baselines.md says which split chose what;
    # the two share disliked_input, PN-EASE's choice); the ridge stays EASE's. weighted-ease reads
    # disliked_input and pn_dropout too: with w = 1, p = 0 it would be EASE.
    disliked_input: float = 0.5
    disliked_score: float = 0.5
    # EDLAE (pngnn.models.linear): the dropout probability p of its denoising, the ridge growing
    # by p/(1-p) x each item's own mass (ease_lambda is its constant part).
    edlae_dropout: float = 0.25
    # The positive/negative linear models' denoising (EDLAE's dropout ridge on their inputs): PN-EASE's
    # 2n and weighted-ease's n; 0 is none. weighted-ease reads disliked_input as the weight of a
    # disliked rating in its one X.
    pn_dropout: float = 0.5
    # GF-CF (pngnn.models.graph_filter): the ideal low-pass filter's weight alpha beside the linear
    # one, and how many singular vectors it keeps (the paper's defaults).
    gfcf_alpha: float = 0.3
    gfcf_k: int = 256
    # iALS (implicit.als.AlternatingLeastSquares, Hu et al. 2008): factors, L2, confidence
    # weight alpha (c = 1 + alpha), sweeps, and which ratings are the observed entries. Defaults:
    # the ML-1M studies' choice on validation, rounded (profiles/ials-ml-1m.json); implicit's own
    # defaults (128 factors, reg 0.01, alpha 1) are a far weaker baseline.
    ials_factors: int = 64
    ials_reg: float = 80.0
    ials_alpha: float = 10.0
    ials_iterations: int = 15
    ials_ratings: RatingSet = "liked"

    def __post_init__(self) -> None:
        choices = (("Dual-BPR variant", self.dual_bpr, DUAL_BPR_VARIANTS),
                   ("LightGCN graph", self.lightgcn_graph, LIGHTGCN_GRAPHS),
                   ("pair sampling", self.pair_sampling, PAIR_SAMPLINGS),
                   ("augmentation mode", self.aug_mode, AUG_MODES),
                   ("validation metric", self.valid_metric, METRICS),
                   ("ease_ratings", self.ease_ratings, RATING_SETS), ("ials_ratings", self.ials_ratings, RATING_SETS))
        for what, value, allowed in choices:
            if value not in allowed:
                raise PngnnError(f"unknown {what} '{value}'; choose one of {', '.join(allowed)}")
        for name in ("ease_lambda", "disliked_input", "ials_reg", "ials_alpha"):
            if not getattr(self, name) > 0:
                raise PngnnError(f"training setting {name}={getattr(self, name)} must be > 0 (e.g. "
                                 f"{getattr(TrainConfig, name)})")
        if not 0 < self.edlae_dropout < 1:
            raise PngnnError(f"training setting edlae_dropout={self.edlae_dropout} must lie in (0, 1) (e.g. 0.25)")
        if not 0 <= self.pn_dropout < 1:
            raise PngnnError(f"training setting pn_dropout={self.pn_dropout} must lie in [0, 1) "
                             "(0 is plain PN-EASE; e.g. 0.25)")
        for name in ("dim", "layers", "batch_size", "epochs", "n_neg", "ials_factors", "ials_iterations", "gfcf_k"):
            if getattr(self, name) < 1:
                raise PngnnError(f"training setting {name}={getattr(self, name)} must be at least 1")
        for name, value in asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise PngnnError(f"training setting {name}={value} must be a finite number (e.g. "
                                 f"{getattr(TrainConfig, name)})")
        if not 0 <= self.seed <= MAX_TRAIN_SEED:
            raise PngnnError(f"training setting seed={self.seed} is out of range; use a seed from 0 to "
                             f"{MAX_TRAIN_SEED} (e.g. --set seed=0)")
        if self.max_batches < 0:
            raise PngnnError(f"training setting max_batches={self.max_batches} must be 0 (no cap) or more")
        if self.ease_max_items < 0:
            raise PngnnError(f"training setting ease_max_items={self.ease_max_items} must be 0 (every item) or more")
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

    Tuned profiles (``pngnn.core.profiles``) also name the method they were tuned for and may hold
    one configuration per split seed (each split tuned on its own validation part)."""

    name: str
    dataset: str
    seeds: tuple[int, ...]
    train: TrainConfig
    test_fraction: float = 0.2
    valid_fraction: float = 0.0
    method: str | None = None
    per_seed: Mapping[int, TrainConfig] = field(default_factory=dict)
    # How its splits are drawn (pngnn.data.protocols): the paper's random 80/20 unless set.
    split_protocol: SplitProtocol = "random"
    last_n: int = 1

    def config_for(self, seed: int) -> TrainConfig:
        return self.per_seed.get(seed, self.train)

    def split_args(self) -> dict[str, Any]:
        """The split settings as ``split_step`` and ``create_split`` take them."""
        return {"test_fraction": self.test_fraction, "valid_fraction": self.valid_fraction,
                "protocol": self.split_protocol, "last_n": self.last_n}


PROFILES: dict[str, Profile] = {
    # Finishes in a few minutes on 2 CPU cores: ML-100K, one split, a short schedule.
    "quick": Profile(
        name="quick",
        dataset=DEFAULT_DATASET,
        seeds=(1,),
        train=TrainConfig(epochs=30, batch_size=2048, n_neg=10, l2=1e-3),
    ),
    # The paper's settings on ML-1M, three random 80/20 splits.
    "paper": Profile(name="paper", dataset="ml-1m", seeds=SPLIT_SEEDS, train=TrainConfig(max_batches=256)),
}


def check_dataset(name: str) -> str:
    """A MovieLens name (the datasets whose files pngnn knows how to fetch and parse)."""
    if name not in DATASETS:
        raise PngnnError(f"unknown dataset '{name}'; choose one of {list(DATASETS)}, or bring your own data with "
                         f"`pngnn ingest --name {name} --ratings FILE`")
    return name


def merge_overrides(set_values: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """``--set`` values and the flags that name the same settings, as one set of overrides: a value
    given either way counts (a flag left out is None and takes nothing away), and the same
    setting given both ways with different values is an error, never a silent pick."""
    merged = dict(set_values)
    for key, value in flags.items():
        if value is None:
            continue
        if key in merged and merged[key] != value:
            flag = "--" + key.replace("_", "-")
            raise PngnnError(f"{flag} {value} and --set {key}={merged[key]} disagree; give the setting once")
        merged[key] = value
    return merged


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--set dim=128``) as training settings, each value read as the type
    of the setting's default (``true``/``false`` for flags)."""
    defaults = TrainConfig().to_dict()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in defaults:
            raise PngnnError(f"--set {item!r}: expected KEY=VALUE with KEY one of {sorted(defaults)}")
        kind = type(defaults[key])
        try:
            if kind is bool:
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                out[key] = text.lower() == "true"
            else:
                out[key] = kind(text)
        except ValueError:
            what = {bool: "true or false", int: "an integer", float: "a number"}.get(kind, "a name")
            raise PngnnError(f"--set {item!r}: {key} takes {what}, e.g. {key}={defaults[key]}") from None
    return out


MAX_SEED = 2**31 - 1  # split seeds are stored as DuckDB INTEGER


def check_seeds(seeds: Iterable[int]) -> list[int]:
    """The split seeds, checked before any work (the commands, the flows): a bad one is a one-line error."""
    seeds = list(seeds)
    for seed in seeds:
        if not 0 <= seed <= MAX_SEED:
            raise PngnnError(f"split seed {seed} is out of range; use a seed from 0 to {MAX_SEED} (e.g. --seed 1)")
    return seeds
