"""Training loop shared by every graph model.

One epoch = as many draws as there are training pairs (``pair_sampling``: by default each
user equally likely, then one of their pairs; or every pair once in a fresh random order),
each with ``n_neg`` negatives drawn for the whole epoch in one vectorised call. The model
propagates the full graph on every batch (that is the method: the batch's loss depends on all
embeddings through A_hat). Early stopping, when asked for, looks only at the
validation part carved from train, never at test.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from pngnn.config import DISLIKED_PAIR_VARIANTS, TrainConfig
from pngnn.evaluate import evaluate
from pngnn.graph import normalized_adjacency
from pngnn.models.base import GraphRecommender
from pngnn.models.lightgcn import LightGCN, MostPopular
from pngnn.models.pngnn import PNGNN
from pngnn.sampling import DislikedSampler, EpochPairOrder, NegativeSampler
from pngnn.split import Interactions, SplitData

log = logging.getLogger(__name__)


@dataclass
class EpochLog:
    epoch: int
    loss: float
    seconds: float
    parts: dict[str, float] = field(default_factory=dict)
    valid: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    model: GraphRecommender
    history: list[EpochLog]
    best_epoch: int
    seconds: float


EpochCallback = Callable[[EpochLog], None]


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def lightgcn_edges(split: SplitData, cfg: TrainConfig) -> Interactions:
    """The LightGCN graph: positive train ratings (default) or all train ratings."""
    return split.train.positive(cfg.threshold) if cfg.lightgcn_graph == "positive" else split.train


def build_lightgcn(split: SplitData, cfg: TrainConfig, edges: Interactions | None = None) -> LightGCN:
    edges = edges if edges is not None else lightgcn_edges(split, cfg)
    adj = normalized_adjacency(edges.users, edges.items, split.n_users, split.n_items)
    return LightGCN(adj, split.n_users, split.n_items, dim=cfg.dim, layers=cfg.layers, l2=cfg.l2)


def build_pngnn(split: SplitData, cfg: TrainConfig, train: Interactions | None = None) -> PNGNN:
    """PN-GNN over the rating partition of ``train`` (default: the split's train part)."""
    train = train if train is not None else split.train
    pos, neg = train.positive(cfg.threshold), train.negative(cfg.threshold)
    adj_pos = normalized_adjacency(pos.users, pos.items, split.n_users, split.n_items)
    adj_neg = normalized_adjacency(neg.users, neg.items, split.n_users, split.n_items)
    return PNGNN(adj_pos, adj_neg, split.n_users, split.n_items, dim=cfg.dim, layers=cfg.layers, l2=cfg.l2,
                 b=cfg.b, variant=cfg.dual_bpr, attention=cfg.attention)


@dataclass
class PairPlan:
    """What an epoch of PN-GNN trains on: the pairs, fixed per-pair features, per-epoch features."""

    pairs: Interactions
    pair_features: dict[str, np.ndarray] | None = None
    epoch_features: Callable[[], dict[str, np.ndarray]] | None = None


def pngnn_pair_plan(train: Interactions, n_users: int, cfg: TrainConfig) -> PairPlan:
    """The training pairs of the configured Dual-BPR reading (shared by training and benchmarks).

    ``graded``/``weighted``: the liked pairs, each epoch paired with a fresh disliked item of the
    same user; the other readings: every rated pair, flagged positive or not."""
    if cfg.dual_bpr in DISLIKED_PAIR_VARIANTS:
        pairs = train.positive(cfg.threshold)
        dislikes = train.negative(cfg.threshold)
        sampler = DislikedSampler(dislikes.users, dislikes.items, n_users, seed=cfg.seed)
        return PairPlan(pairs, epoch_features=lambda: {"disliked": sampler.sample(pairs.users)})
    return PairPlan(train, pair_features={"positive": train.ratings > cfg.threshold})


def train_pngnn(
    split: SplitData,
    cfg: TrainConfig,
    on_epoch: EpochCallback | None = None,
    extra_ratings: Interactions | None = None,
    progress: bool = True,
) -> TrainResult:
    """Build and train PN-GNN on every train rating (both graphs), optionally with extra (LLM) ratings."""
    seed_everything(cfg.seed)
    train = split.train
    if extra_ratings is not None and len(extra_ratings):
        train = train.concat(extra_ratings)
    model = build_pngnn(split, cfg, train)
    plan = pngnn_pair_plan(train, split.n_users, cfg)
    return fit(model, plan.pairs, train, split.n_users, split.n_items, cfg, split.valid, on_epoch,
               pair_features=plan.pair_features, epoch_features=plan.epoch_features, progress=progress)


def build_most_popular(split: SplitData, cfg: TrainConfig) -> MostPopular:
    pos = split.train.positive(cfg.threshold)
    counts = np.bincount(pos.items, minlength=split.n_items)
    return MostPopular(torch.from_numpy(counts), split.n_users)


def fit(
    model: GraphRecommender,
    pairs: Interactions,
    rated: Interactions,
    n_users: int,
    n_items: int,
    cfg: TrainConfig,
    valid: Interactions | None = None,
    on_epoch: EpochCallback | None = None,
    pair_features: dict[str, np.ndarray] | None = None,
    progress: bool = True,
    epoch_features: Callable[[], dict[str, np.ndarray]] | None = None,
) -> TrainResult:
    """Train ``model`` on ``pairs`` with negatives never among ``rated`` (the user's train items).

    ``pair_features``: fixed per-pair arrays passed to ``calculate_loss`` by name;
    ``epoch_features``: the same, drawn afresh at the start of every epoch."""
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sampler = NegativeSampler(rated.users, rated.items, n_users, n_items, cfg.neg_exponent, seed=cfg.seed)
    pair_order = EpochPairOrder(pairs.users, n_users, cfg.pair_sampling)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    users_t = torch.from_numpy(pairs.users)
    items_t = torch.from_numpy(pairs.items)
    feats_t = {k: torch.from_numpy(v) for k, v in (pair_features or {}).items()}
    use_valid = valid is not None and len(valid) > 0 and cfg.eval_every > 0
    history: list[EpochLog] = []
    best, best_epoch, best_state, stale = -1.0, cfg.epochs, None, 0
    start_all = time.perf_counter()
    n_batches = (len(pairs) + cfg.batch_size - 1) // cfg.batch_size
    epochs = tqdm(range(1, cfg.epochs + 1), desc="epochs", disable=not progress, unit="ep")
    for epoch in epochs:
        t0 = time.perf_counter()
        model.train()
        order = pair_order.draw(rng)
        neg_all = torch.from_numpy(sampler.sample(pairs.users[order], cfg.n_neg))
        perm = torch.from_numpy(order)
        if epoch_features is not None:
            feats_t.update({k: torch.from_numpy(v) for k, v in epoch_features().items()})
        total, parts_sum = 0.0, {}
        for b in tqdm(range(n_batches), desc=f"epoch {epoch}", leave=False, disable=not progress):
            rows = slice(b * cfg.batch_size, (b + 1) * cfg.batch_size)
            idx = perm[rows]
            extra = {k: v[idx] for k, v in feats_t.items()}
            loss, parts = model.calculate_loss(users_t[idx], items_t[idx], neg_all[rows].long(), **extra)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + float(v) * len(idx)
        entry = EpochLog(
            epoch=epoch,
            loss=total / len(pairs),
            seconds=time.perf_counter() - t0,
            parts={k: v / len(pairs) for k, v in parts_sum.items()},
        )
        if use_valid and epoch % cfg.eval_every == 0:
            entry.valid = evaluate(model.scorer(), n_items, rated, valid, cfg.threshold)
            score = entry.valid[cfg.valid_metric]
            if score > best:
                best, best_epoch, stale = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
        history.append(entry)
        epochs.set_postfix(loss=f"{entry.loss:.4f}", s=f"{entry.seconds:.1f}")
        log.info("epoch %d loss %.5f (%.1fs) %s", epoch, entry.loss, entry.seconds, entry.valid or "")
        if on_epoch is not None:
            on_epoch(entry)
        if use_valid and cfg.patience and stale >= cfg.patience:
            log.info("early stop at epoch %d: no validation gain for %d evaluations", epoch, stale)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = history[-1].epoch if history else 0
    return TrainResult(model, history, best_epoch, time.perf_counter() - start_all)


def train_lightgcn(
    split: SplitData,
    cfg: TrainConfig,
    on_epoch: EpochCallback | None = None,
    extra_edges: Interactions | None = None,
    progress: bool = True,
) -> TrainResult:
    """Build and train LightGCN on one split (optionally with extra, e.g. LLM, edges).

    The extra edges are training pairs like the ratings, so negatives are never drawn among
    them either (an LLM 'like' drawn as its own negative would cancel its own pair)."""
    seed_everything(cfg.seed)
    edges, rated = lightgcn_edges(split, cfg), split.train
    if extra_edges is not None and len(extra_edges):
        edges, rated = edges.concat(extra_edges), rated.concat(extra_edges)
    model = build_lightgcn(split, cfg, edges)
    return fit(model, edges, rated, split.n_users, split.n_items, cfg, split.valid, on_epoch,
               progress=progress)
