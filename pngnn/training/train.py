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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np
import torch
from tqdm.auto import tqdm

from pngnn.core.config import DISLIKED_PAIR_VARIANTS, TrainConfig
from pngnn.data.split import Interactions, SplitData
from pngnn.evaluation.evaluate import evaluate
from pngnn.models.base import GraphRecommender
from pngnn.models.graph import normalized_adjacency
from pngnn.models.lightgcn import LightGCN, MostPopular
from pngnn.models.pngnn import PNGNN
from pngnn.models.sampling import DislikedSampler, EpochPairOrder, NegativeSampler
from pngnn.training.checkpoints import restore_rng_states, rng_states
from pngnn.training.device import training_device
from pngnn.training.draw_ahead import DrawAhead, EpochDraw
from pngnn.training.schedule import BatchSchedule, batch_schedule

if TYPE_CHECKING:
    from pngnn.training.checkpoints import Checkpointer

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


class TrainHooks(TypedDict, total=False):
    """What watches a training run, declared once for every trainer (``train_lightgcn``,
    ``train_pngnn``, ``pngnn.training.methods.train_method``, ``pngnn.training.outcome.train_evaluate_step``) and
    handed on to ``fit``, which holds the defaults: ``on_epoch`` (called after each epoch, e.g.
    the MLflow logger; none), ``progress`` (a progress bar; on), ``checkpoint`` (saved every few
    epochs and continued from; none), ``draw_ahead`` (the next epoch's draws made while one trains;
    on). A closed-form method has no epochs and ignores them."""

    on_epoch: EpochCallback | None
    progress: bool
    checkpoint: Checkpointer | None
    draw_ahead: bool


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def subnormals_flushed_now() -> bool:
    """Whether the CPU computes subnormal floats as 0 on this thread now."""
    return (torch.tensor([1e-30]) * 1e-10).item() == 0.0


@contextmanager
def subnormals_flushed() -> Iterator[None]:
    """Subnormal floats read and written as 0 on the CPU while a training runs, then the mode it
    found. Why: a loss whose margins keep growing (the ``branch`` reading's b * y_ui on the negative
    branch is bounded only by L2) drives softplus and sigmoid into the subnormal range, where x86
    arithmetic is many times slower, so such a run's epochs slow down by an order of magnitude
    partway through. Values below 1.2e-38 become 0: nothing a metric can see. Restored after, as the
    mode is the whole thread's: other code in the process (Hypothesis refuses to run under it) keeps
    IEEE arithmetic."""
    was_flushing = subnormals_flushed_now()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_flushing)


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
    generators: dict[str, np.random.Generator] = field(default_factory=dict)  # what epoch_features draws from


def pngnn_pair_plan(train: Interactions, n_users: int, cfg: TrainConfig) -> PairPlan:
    """The training pairs of the configured Dual-BPR reading (shared by training and benchmarks).

    ``graded``/``weighted``: the liked pairs, each epoch paired with a fresh disliked item of the
    same user; the other readings: every rated pair, flagged positive or not."""
    if cfg.dual_bpr in DISLIKED_PAIR_VARIANTS:
        pairs = train.positive(cfg.threshold)
        dislikes = train.negative(cfg.threshold)
        sampler = DislikedSampler(dislikes.users, dislikes.items, n_users, seed=cfg.seed)
        return PairPlan(pairs, epoch_features=lambda: {"disliked": sampler.sample(pairs.users)},
                        generators={"disliked": sampler.rng})
    return PairPlan(train, pair_features={"positive": train.ratings > cfg.threshold})


def train_pngnn(split: SplitData, cfg: TrainConfig, extra_ratings: Interactions | None = None,
                **hooks: Unpack[TrainHooks]) -> TrainResult:
    """Build and train PN-GNN on every train rating (both graphs), optionally with extra (LLM)
    ratings: in both graphs and the training pairs, or (``cfg.aug_mode == "triples"``) in the
    training pairs only."""
    seed_everything(cfg.seed)
    train = graph = split.train
    if extra_ratings is not None and len(extra_ratings):
        train = train.concat(extra_ratings)
        graph = train if cfg.aug_mode == "graph" else split.train
    model = build_pngnn(split, cfg, graph)
    plan = pngnn_pair_plan(train, split.n_users, cfg)
    method = "llm-pngnn" if extra_ratings is not None and len(extra_ratings) else "pngnn"
    return fit(model, plan.pairs, train, split.n_users, split.n_items, cfg, split.valid,
               pair_features=plan.pair_features, epoch_features=plan.epoch_features, generators=plan.generators,
               label=f"{method} {split.dataset} seed {split.seed}", **hooks)


def build_most_popular(split: SplitData, cfg: TrainConfig) -> MostPopular:
    pos = split.train.positive(cfg.threshold)
    counts = np.bincount(pos.items, minlength=split.n_items)
    return MostPopular(torch.from_numpy(counts), split.n_users)


@dataclass
class EarlyStopping:
    """The validation watch: the best score so far, its epoch and weights, and how many
    evaluations since brought no gain (a checkpoint keeps it, so a resumed run stops and
    restores exactly where the whole run would)."""

    best: float = -1.0
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0

    def observe(self, score: float, epoch: int, model: GraphRecommender) -> None:
        if score > self.best:
            self.best, self.best_epoch, self.stale = score, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1


@dataclass
class FitProgress:
    """How far a run got: the epochs done, their logs, the early-stopping watch and the
    training time spent, over every process that worked on it."""

    epoch: int = 0
    history: list[EpochLog] = field(default_factory=list)
    watch: EarlyStopping = field(default_factory=EarlyStopping)
    seconds: float = 0.0
    stopped: bool = False


def checkpoint_state(progress: FitProgress, model: GraphRecommender, opt: torch.optim.Optimizer,
                     streams: Mapping[str, np.random.Generator],
                     stream_states: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything the next epoch depends on, as plain tensors and containers (``stream_states``:
    the streams' states before the next epoch's draws, when those are under way)."""
    watch = progress.watch
    return {"epoch": progress.epoch, "seconds": progress.seconds, "stopped": progress.stopped,
            "history": [asdict(e) for e in progress.history],
            "early_stopping": {"best": watch.best, "best_epoch": watch.best_epoch, "best_state": watch.best_state,
                               "stale": watch.stale},
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "rng": rng_states(streams, stream_states)}


def restore_state(state: Mapping[str, Any], model: GraphRecommender, opt: torch.optim.Optimizer,
                  streams: Mapping[str, np.random.Generator]) -> FitProgress:
    """Put the model, optimiser and random streams back as ``checkpoint_state`` saw them."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    restore_rng_states(state["rng"], streams)
    return FitProgress(epoch=state["epoch"], history=[EpochLog(**e) for e in state["history"]],
                       watch=EarlyStopping(**state["early_stopping"]), seconds=state["seconds"],
                       stopped=state["stopped"])


def train_epoch(model: GraphRecommender, opt: torch.optim.Optimizer, users: torch.Tensor, items: torch.Tensor,
                order: np.ndarray, negatives: np.ndarray, features: Mapping[str, torch.Tensor], batch_size: int,
                label: str, progress: bool, schedule: BatchSchedule | None = None,
                first_step: int = 0) -> tuple[float, dict[str, float]]:
    """One pass over the epoch's pair order in batches; the mean loss and loss parts per pair.
    ``schedule``: each step's learning rate (its warm-up), steps counted from ``first_step``."""
    model.train()
    device = users.device
    perm, neg_all = torch.from_numpy(order).to(device), torch.from_numpy(negatives).to(device)
    # The sums stay where the loss is (the device) and are read once, at the end: on a GPU each
    # float() of a step's loss is a host sync that waits for the step before the next is queued.
    n, total = len(order), torch.zeros((), dtype=torch.float64)
    parts_sum: dict[str, torch.Tensor] = {}
    for b in tqdm(range((n + batch_size - 1) // batch_size), desc=label, leave=False, disable=not progress):
        rows = slice(b * batch_size, (b + 1) * batch_size)
        idx = perm[rows]
        extra = {k: v[idx] for k, v in features.items()}
        loss, parts = model.calculate_loss(users[idx], items[idx], neg_all[rows].long(), **extra)
        if schedule is not None and schedule.scaled:
            for group in opt.param_groups:
                group["lr"] = schedule.lr_at(first_step + b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total = total.to(loss.device) + loss.detach().double() * len(idx)
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0) + v.detach().double() * len(idx)
    return float(total) / n, {k: float(v) / n for k, v in parts_sum.items()}


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
    generators: Mapping[str, np.random.Generator] | None = None,
    checkpoint: Checkpointer | None = None,
    label: str | None = None,
    draw_ahead: bool = True,
) -> TrainResult:
    """Train ``model`` on ``pairs`` with negatives never among ``rated`` (the user's train items).

    ``label``: what every epoch line names (method, dataset, split), so a flow's log that trains
    several models at once says which model each line is about; default: the model's class.

    ``pair_features``: fixed per-pair arrays passed to ``calculate_loss`` by name;
    ``epoch_features``: the same, drawn afresh at the start of every epoch from the random
    ``generators`` (named, so a checkpoint can save and restore them). ``checkpoint``: written
    every few epochs, and continued from when it holds this run; ``on_epoch`` then first sees
    the restored epochs, so a tracker's curve is whole. ``draw_ahead``: each epoch's pair order,
    negatives and features are drawn while the epoch before trains (``pngnn.training.draw_ahead``;
    the same draws as in line)."""
    seed_everything(cfg.seed)
    device = training_device()
    model.to(device)
    rng = np.random.default_rng(cfg.seed)
    sampler = NegativeSampler(rated.users, rated.items, n_users, n_items, cfg.neg_exponent, seed=cfg.seed)
    pair_order = EpochPairOrder(pairs.users, n_users, cfg.pair_sampling)
    schedule = batch_schedule(cfg, len(pairs))
    if schedule.scaled:
        log.info("%d pairs an epoch: batches of %d (at most %d steps an epoch), learning rate %.4g warmed up over "
                 "%d steps", len(pairs), schedule.batch_size, cfg.max_batches, schedule.lr, schedule.warmup_steps)
    opt = torch.optim.Adam(model.parameters(), lr=schedule.lr)
    streams = {"pair_order": rng, "negatives": sampler.rng, **(generators or {})}
    users_t = torch.from_numpy(pairs.users).to(device)
    items_t = torch.from_numpy(pairs.items).to(device)
    feats_t = {k: torch.from_numpy(v).to(device) for k, v in (pair_features or {}).items()}
    valid_set = valid if valid is not None and len(valid) > 0 and cfg.eval_every > 0 else None
    use_valid = valid_set is not None
    done = FitProgress()
    if checkpoint is not None and checkpoint.restored is not None:
        done = restore_state(checkpoint.restored, model, opt, streams)
        log.info("resuming from epoch %d of %s", done.epoch, checkpoint.path)
        if on_epoch is not None:
            for entry in done.history:
                on_epoch(entry)
    spent_before, start_all = done.seconds, time.perf_counter()
    first = cfg.epochs + 1 if done.stopped else done.epoch + 1
    epochs = tqdm(range(first, cfg.epochs + 1), desc="epochs", disable=not progress, unit="ep")

    def draw_epoch() -> EpochDraw:  # in this order, from these streams only: what the checkpoint restores
        order = pair_order.draw(rng)
        negatives = sampler.sample(pairs.users[order], cfg.n_neg)
        return EpochDraw(order, negatives, epoch_features() if epoch_features is not None else {})

    with subnormals_flushed(), DrawAhead(draw_epoch, streams, ahead=draw_ahead) as draws:
        for epoch in epochs:
            t0 = time.perf_counter()
            draw = draws.take()
            if epoch < cfg.epochs:
                draws.start_next()
            feats_t.update({k: torch.from_numpy(v).to(device) for k, v in draw.features.items()})
            steps = -(-len(draw.order) // schedule.batch_size)
            loss, parts = train_epoch(model, opt, users_t, items_t, draw.order, draw.negatives, feats_t,
                                      schedule.batch_size, f"epoch {epoch}", progress, schedule,
                                      first_step=(epoch - 1) * steps)
            entry = EpochLog(epoch=epoch, loss=loss, seconds=time.perf_counter() - t0, parts=parts)
            if valid_set is not None and epoch % cfg.eval_every == 0:
                entry.valid = evaluate(model.scorer(), n_items, rated, valid_set, cfg.threshold)
                done.watch.observe(entry.valid[cfg.valid_metric], epoch, model)
            done.epoch = epoch
            done.history.append(entry)
            epochs.set_postfix(loss=f"{entry.loss:.4f}", s=f"{entry.seconds:.1f}")
            log.info("%s: epoch %d/%d loss %.5f %.1fs%s", label or type(model).__name__, epoch, cfg.epochs, entry.loss,
                     entry.seconds,
                     f" valid {cfg.valid_metric} {entry.valid[cfg.valid_metric]:.4f}" if entry.valid else "")
            if on_epoch is not None:
                on_epoch(entry)
            done.stopped = bool(use_valid and cfg.patience and done.watch.stale >= cfg.patience)
            if checkpoint is not None and checkpoint.due(epoch, last=done.stopped or epoch == cfg.epochs):
                done.seconds = spent_before + time.perf_counter() - start_all
                checkpoint.save(checkpoint_state(done, model, opt, streams, draws.stream_states()))
            if done.stopped:
                log.info("early stop at epoch %d: no validation gain for %d evaluations", epoch, done.watch.stale)
                break
    if done.watch.best_state is not None:
        model.load_state_dict(done.watch.best_state)
        best_epoch = done.watch.best_epoch
    else:
        best_epoch = done.history[-1].epoch if done.history else 0
    return TrainResult(model, done.history, best_epoch, spent_before + time.perf_counter() - start_all)


def train_lightgcn(split: SplitData, cfg: TrainConfig, extra_edges: Interactions | None = None,
                   **hooks: Unpack[TrainHooks]) -> TrainResult:
    """Build and train LightGCN on one split (optionally with extra, e.g. LLM, edges).

    The extra edges are training pairs like the ratings, so negatives are never drawn among
    them either (an LLM 'like' drawn as its own negative would cancel its own pair); they join
    the graph too unless ``cfg.aug_mode == "triples"``."""
    seed_everything(cfg.seed)
    edges, rated = lightgcn_edges(split, cfg), split.train
    graph = edges
    if extra_edges is not None and len(extra_edges):
        edges, rated = edges.concat(extra_edges), rated.concat(extra_edges)
        graph = edges if cfg.aug_mode == "graph" else graph
    model = build_lightgcn(split, cfg, graph)
    method = "llm-lightgcn" if extra_edges is not None and len(extra_edges) else "lightgcn"
    return fit(model, edges, rated, split.n_users, split.n_items, cfg, split.valid,
               label=f"{method} {split.dataset} seed {split.seed}", **hooks)
