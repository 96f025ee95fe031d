"""The methods of the results table, behind one call: ``train_method(name, split, cfg)``.

New methods (PN-GNN, the LLM-augmented variants) register here, so the CLI, the Prefect
tasks and the experiment flow never need to know how a method is built.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, Unpack

from pngnn.core.config import TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.data.split import Interactions, SplitData
from pngnn.models.base import GraphRecommender
from pngnn.models.factorization import fit_ials
from pngnn.models.graph_filter import fit_gf_cf
from pngnn.models.linear import fit_ease, fit_edlae, fit_pn_ease, fit_weighted_ease
from pngnn.training.device import training_device
from pngnn.training.train import TrainHooks, TrainResult, build_most_popular, train_lightgcn, train_pngnn


def _most_popular(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    return TrainResult(build_most_popular(split, cfg), [], 0, 0.0)


def _lightgcn(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    return train_lightgcn(split, cfg, **hooks)


def _pngnn(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    return train_pngnn(split, cfg, **hooks)


def _closed_form(build: Callable[[], GraphRecommender]) -> TrainResult:
    """A model fitted in one go: no epochs, no curve, just the fit time."""
    t0 = time.perf_counter()
    model = build()
    return TrainResult(model, [], 0, time.perf_counter() - t0)


def _ease(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    return _closed_form(lambda: fit_ease(split.train, split.n_users, split.n_items, cfg.ease_lambda,
                                         cfg.ease_ratings, cfg.threshold, max_items=cfg.ease_max_items,
                                         device=training_device()))


def _edlae(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    return _closed_form(lambda: fit_edlae(split.train, split.n_users, split.n_items, cfg.ease_lambda,
                                          cfg.edlae_dropout, cfg.ease_ratings, cfg.threshold,
                                          max_items=cfg.ease_max_items, device=training_device()))


def _gf_cf(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    return _closed_form(lambda: fit_gf_cf(split.train, split.n_users, split.n_items, cfg.gfcf_alpha, cfg.gfcf_k,
                                          cfg.ease_ratings, cfg.threshold, max_items=cfg.ease_max_items))


def _pn_ease_on(train: Interactions, split: SplitData, cfg: TrainConfig) -> TrainResult:
    return _closed_form(lambda: fit_pn_ease(train, split.n_users, split.n_items, cfg.ease_lambda,
                                            cfg.disliked_input, cfg.disliked_score, cfg.threshold,
                                            max_items=cfg.ease_max_items, device=training_device(),
                                            dropout=cfg.pn_dropout))


def _weighted_ease_on(train: Interactions, split: SplitData, cfg: TrainConfig) -> TrainResult:
    return _closed_form(lambda: fit_weighted_ease(train, split.n_users, split.n_items, cfg.ease_lambda,
                                                  cfg.disliked_input, cfg.threshold, max_items=cfg.ease_max_items,
                                                  device=training_device(), dropout=cfg.pn_dropout))


def _pn_ease(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    return _pn_ease_on(split.train, split, cfg)


def _weighted_ease(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    return _weighted_ease_on(split.train, split, cfg)


def _ials(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    return _closed_form(lambda: fit_ials(split.train, split.n_users, split.n_items, cfg.ials_factors, cfg.ials_reg,
                                         cfg.ials_alpha, cfg.ials_iterations, cfg.ials_ratings, cfg.threshold,
                                         seed=cfg.seed))


def _augmented(split: SplitData) -> Interactions:
    if split.augmented is None or not len(split.augmented):
        raise PngnnError(
            f"no LLM-augmented edges loaded for {split.dataset} split {split.seed}; run the augment step "
            "(`pngnn augment`, `pngnn run --method llm-pngnn` or the augment task) first"
        )
    return split.augmented


def _llm_lightgcn(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    """LightGCN on train + the LLM's 'like' edges (the positive graph gains edges; dislikes unused)."""
    extra = _augmented(split).positive(cfg.threshold)
    return train_lightgcn(split, cfg, extra, **hooks)


def _llm_pngnn(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    """PN-GNN on train + LLM edges: 'like' joins the positive graph, 'dislike' the negative one."""
    return train_pngnn(split, cfg, _augmented(split), **hooks)


def _llm_pn_ease(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    """PN-EASE on train + LLM edges: a 'like' joins the liked input, a 'dislike' the disliked one
    (the edges carry ratings on either side of the threshold, as ``pn_inputs`` reads them)."""
    return _pn_ease_on(split.train.concat(_augmented(split)), split, cfg)


def _llm_weighted_ease(split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    """weighted-ease on train + LLM edges: a 'like' enters X as 1, a 'dislike' as w (the edges carry
    ratings on either side of the threshold, as ``weighted_inputs`` reads them)."""
    return _weighted_ease_on(split.train.concat(_augmented(split)), split, cfg)


class Trainer(Protocol):
    """How every method trains: (split, cfg) and the training hooks, which the closed-form ones ignore."""

    def __call__(self, split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult: ...


METHODS: dict[str, Trainer] = {
    "mostpop": _most_popular,
    "lightgcn": _lightgcn,
    "pngnn": _pngnn,
    "llm-lightgcn": _llm_lightgcn,
    "llm-pngnn": _llm_pngnn,
    "ease": _ease,
    "edlae": _edlae,
    "gf-cf": _gf_cf,
    "pn-ease": _pn_ease,
    "llm-pn-ease": _llm_pn_ease,
    "weighted-ease": _weighted_ease,
    "llm-weighted-ease": _llm_weighted_ease,
    "ials": _ials,
}
# Every llm- method trains on the LLM's edges: derived from the names, so a new llm- method cannot be
# left out (its edges would not be loaded and it would say "run the augment step" after one ran).
NEEDS_AUGMENTATION = frozenset(name for name in METHODS if name.startswith("llm-"))
# The methods that learn from disliked ratings: implicit data (every interaction a like) has none.
NEEDS_DISLIKES = frozenset({"pngnn", "llm-pngnn", "pn-ease", "llm-pn-ease", "weighted-ease", "llm-weighted-ease"})

# The TrainConfig fields each method reads: what its MLflow run logs, what a tuned profile
# saves, and what its search space may touch (so an EASE run never shows a PN-GNN's b).
_GNN = ("dim", "layers", "lr", "batch_size", "max_batches", "epochs", "l2", "n_neg", "neg_exponent", "pair_sampling",
        "eval_every", "patience", "valid_metric", "seed", "threshold")
_PNGNN = (*_GNN, "dual_bpr", "b", "attention")
METHOD_SETTINGS: dict[str, tuple[str, ...]] = {
    "mostpop": ("threshold",),
    "lightgcn": (*_GNN, "lightgcn_graph"),
    "pngnn": _PNGNN,
    "llm-lightgcn": (*_GNN, "lightgcn_graph", "aug_mode"),
    "llm-pngnn": (*_PNGNN, "aug_mode"),
    "ease": ("ease_lambda", "ease_ratings", "ease_max_items", "threshold"),
    "edlae": ("ease_lambda", "edlae_dropout", "ease_ratings", "ease_max_items", "threshold"),
    "gf-cf": ("gfcf_alpha", "gfcf_k", "ease_ratings", "ease_max_items", "threshold"),
    "pn-ease": ("ease_lambda", "disliked_input", "disliked_score", "pn_dropout", "ease_max_items", "threshold"),
    "llm-pn-ease": ("ease_lambda", "disliked_input", "disliked_score", "pn_dropout", "ease_max_items",
                    "threshold"),
    "weighted-ease": ("ease_lambda", "disliked_input", "pn_dropout", "ease_max_items", "threshold"),
    "llm-weighted-ease": ("ease_lambda", "disliked_input", "pn_dropout", "ease_max_items", "threshold"),
    "ials": ("ials_factors", "ials_reg", "ials_alpha", "ials_iterations", "ials_ratings", "seed", "threshold"),
}


def method_settings(method: str, cfg: TrainConfig) -> dict[str, object]:
    """The settings of ``cfg`` that ``method`` uses."""
    values = cfg.to_dict()
    return {name: values[name] for name in METHOD_SETTINGS[check_method(method)]}


def check_method(name: str) -> str:
    if name not in METHODS:
        raise PngnnError(f"unknown method '{name}'; choose one of {sorted(METHODS)}")
    return name


def train_method(name: str, split: SplitData, cfg: TrainConfig, **hooks: Unpack[TrainHooks]) -> TrainResult:
    check_method_fits(name, split)
    return METHODS[name](split, for_dataset(cfg, split), **hooks)


def for_dataset(cfg: TrainConfig, split: SplitData) -> TrainConfig:
    """``cfg`` with the dataset's own like threshold: a property of a user's data (set at ingest),
    not a training setting; MovieLens keeps the configuration's (3.5)."""
    if split.like_threshold is None or split.like_threshold == cfg.threshold:
        return cfg
    return cfg.with_overrides(threshold=float(split.like_threshold))


def check_method_fits(name: str, split: SplitData) -> None:
    """A method that needs disliked ratings refuses implicit data in one line, not silently."""
    if split.implicit and check_method(name) in NEEDS_DISLIKES:
        raise PngnnError(f"{name} learns from disliked ratings and {split.dataset} is implicit (no rating column: "
                         "every interaction is a like); train lightgcn, ease, ials or mostpop on it, or ingest it "
                         "with a rating column")


def seen_items(split: SplitData) -> Interactions:
    """Everything the user rated outside test (train and validation) is masked at test time.

    LLM edges are not masked: they are guesses about unrated items, and the merge step
    already dropped every edge that duplicates a rating of the split."""
    return split.train.concat(split.valid)
