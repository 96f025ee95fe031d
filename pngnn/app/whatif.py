"""What-if: how good must the LLM be before its edges help? A labelled simulation, never an LLM row.

On its own DuckDB file, split ``seed`` keeps its test part and hands a share of its train
ratings (``holdout``) to a simulated answerer (``pngnn.augment.oracle``) that knows them and
nothing else. PN-GNN trains on what is left of train; for each accuracy ``p`` and number of
users, the answerer's likes and dislikes go through the real augmentation path (OpenAI client
over HTTP, cache, merge) into LLM-PN-GNN, trained the same way. The record holds both models'
test metrics overall and by segment, the lift, and the precision the answers reached (an
accurate answer needs a held-out item among the candidates, so precision stays below p).

Every cell is written to the JSON as it finishes and skipped when the file already has it, so
a long sweep can stop and resume.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from pngnn.augment.candidates import load_candidates, select_users
from pngnn.augment.edges import EdgeSource, load_split_step
from pngnn.augment.oracle import OracleServer, candidate_base_rates, oracle_answers
from pngnn.augment.prompts import PROMPT_VERSION, build_prompts
from pngnn.augment.step import augment_step, pretrain_step
from pngnn.augment.usage import Price, check_price, token_usage
from pngnn.core.config import DATASETS, TrainConfig
from pngnn.core.constants import USER_ORDERS, UserOrder
from pngnn.core.errors import PngnnError
from pngnn.core.provenance import git_commit
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data.prepare import ingest_step
from pngnn.data.split import Interactions, SplitData, create_split
from pngnn.data.store import Store
from pngnn.evaluation.results import write_json_atomic
from pngnn.evaluation.segments import SPARSEST
from pngnn.training.device import resolve_device, use_device
from pngnn.training.outcome import train_evaluate_step

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

LIFT_METRICS = ("precision@20", "recall@20", "ndcg@20")
# The models a what-if can compare with their llm- variant, and their names on plots.
WHATIF_METHODS = {"pngnn": "PN-GNN", "pn-ease": "PN-EASE", "weighted-ease": "weighted EASE"}


@dataclass(frozen=True)
class WhatIfPlan:
    """One sweep: the split, the held-out share, the accuracies and user counts (None: all users)."""

    dataset: str
    seed: int
    ps: tuple[float, ...]
    users: tuple[int | None, ...]
    holdout: float = 0.1
    users_by: UserOrder = "sparsest"
    answer_seed: int = 0
    # False: LLM-PN-GNN trains on the answerer's likes only. Few top candidates are held-out
    # dislikes, so even a perfect answerer's dislike is mostly a guess: this separates the two.
    dislikes: bool = True
    # the model without the edges, against the same model with them ("llm-" + method)
    method: str = "pngnn"

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise PngnnError(f"what-if simulates an LLM on a MovieLens split and {self.dataset} is not one",
                             "run it on ml-100k or ml-1m; ask a real LLM about your data with `pngnn augment`")
        if not 0.0 < self.holdout < 1.0:
            raise PngnnError(f"--holdout must lie strictly between 0 and 1 (e.g. 0.1), got {self.holdout}")
        bad = [p for p in self.ps if not 0.0 <= p <= 1.0]
        if bad or not self.ps:
            raise PngnnError(f"every --p must lie in [0, 1] (e.g. --p 0 --p 0.5 --p 1), got {list(self.ps)}")
        if self.users_by not in USER_ORDERS:
            raise PngnnError(f"unknown user order '{self.users_by}'; choose one of: {', '.join(USER_ORDERS)}")
        if self.method not in WHATIF_METHODS:
            raise PngnnError(f"what-if compares {' or '.join(WHATIF_METHODS)} with its llm- variant, not "
                             f"'{self.method}'", f"pass --method {', '.join(WHATIF_METHODS)}")
        if not self.users or any(u is not None and u < 1 for u in self.users):
            raise PngnnError(f"every --users must be at least 1, or 0 for all users; got {list(self.users)}")

    def model_name(self, p: float, users: int | None) -> str:
        return f"oracle-p{p:.2f}-{'all' if users is None else users}"


def hold_out(settings: Settings, plan: WhatIfPlan) -> dict[str, int]:
    """Make the what-if split (the plain split's test part, ``holdout`` of train moved out of it)."""
    ingest_step(settings, plan.dataset)
    with Store(settings.db_path) as store:
        create_split(store, plan.dataset, plan.seed, valid_fraction=plan.holdout)
        with store.transaction():
            store.run_file("whatif_hold_out", dataset=plan.dataset, seed=plan.seed)
        held = store.scalar("SELECT count(*) FROM held_out_ratings WHERE dataset = $dataset AND seed = $seed",
                            dataset=plan.dataset, seed=plan.seed)
    return {"held_out": int(held)}


def _held_out(store: Store, plan: WhatIfPlan) -> pl.DataFrame:
    return store.query_sql("SELECT user_id, item_id, rating FROM held_out_ratings WHERE dataset = $dataset AND "
                           "seed = $seed", dataset=plan.dataset, seed=plan.seed)


def masked_held_out(settings: Settings, plan: WhatIfPlan, split: SplitData) -> SplitData:
    """The split with its held-out ratings as the validation part: training ignores it (no
    validation epochs in a what-if), evaluation masks it like train. Without the mask a right
    answer would cost test recall: a held-out like is never a test item, yet the model that
    learned it ranks it high."""
    with Store(settings.db_path) as store:
        frame = store.query_file("whatif_held_out_indices", dataset=plan.dataset, seed=plan.seed)
    held = Interactions(frame["user_idx"].to_numpy().astype(np.int64), frame["item_idx"].to_numpy().astype(np.int64),
                        frame["rating"].to_numpy().astype(np.float32))
    return replace(split, valid=held)


def decide_answers(settings: Settings, plan: WhatIfPlan, p: float,
                   users: int | None) -> tuple[pl.DataFrame, dict[str, float]]:
    """The answers of accuracy ``p`` to the prompts augmentation will send these users (the same
    ``build_prompts`` call on the same stored candidates, so each answer meets its prompt), and
    the candidates' base rates."""
    with Store(settings.db_path) as store:
        selected = select_users(store, plan.dataset, sample=users, by=plan.users_by, seed=plan.seed)
        prompts = build_prompts(store, plan.dataset, plan.seed, load_candidates(store, plan.dataset, plan.seed,
                                                                                 selected))
        held_out = _held_out(store, plan)
    return oracle_answers(prompts, held_out, p, seed=plan.answer_seed), candidate_base_rates(prompts, held_out)


def lift(llm: dict[str, float], base: dict[str, float]) -> dict[str, float]:
    keys = [*LIFT_METRICS, *(f"{SPARSEST}/{m}" for m in LIFT_METRICS)]
    return {k: round(llm[k] - base[k], 6) for k in keys if k in llm and k in base}


def _share(flags: pl.Series) -> float:
    return round(float(flags.sum()) / max(flags.len(), 1), 4)


def run_cell(settings: Settings, plan: WhatIfPlan, cfg: TrainConfig, p: float, users: int | None,
             base: dict[str, float], progress: bool = False) -> dict[str, Any]:
    model = plan.model_name(p, users)
    answers, base_rates = decide_answers(settings, plan, p, users)
    with OracleServer(answers, model) as server:
        llm = LLMSettings(model=model, base_url=server.base_url, users=users or 0, users_by=plan.users_by,
                          concurrency=8, max_attempts=2)
        counts = augment_step(settings, plan.dataset, plan.seed, llm, progress=progress)
    split = load_split_step(settings, plan.dataset, plan.seed, EdgeSource(model, PROMPT_VERSION))
    split = masked_held_out(settings, plan, split)
    if not plan.dislikes and split.augmented is not None:
        likes = split.augmented.positive(cfg.threshold)
        split = split.with_augmented(likes, likes.select(np.zeros(len(likes), dtype=bool)))
    outcome = train_evaluate_step(split, f"llm-{plan.method}", cfg, progress=progress)
    return {"p": p, "users": users or 0, "model": model, "prompts": answers.height,
            "informed_likes": _share(answers["like_true"]), "informed_dislikes": _share(answers["dislike_true"]),
            "like_precision": _share(answers["like_hit"]), "dislike_precision": _share(answers["dislike_hit"]),
            **base_rates,
            "positive_edges": counts.get("positive_edges", 0), "negative_edges": counts.get("negative_edges", 0),
            "edges_trained_on": outcome.edges.get("llm_edges", 0),
            "lift": lift(outcome.metrics, base), "metrics": outcome.metrics}


def run_whatif(settings: Settings, plan: WhatIfPlan, cfg: TrainConfig, out: Path,
               echo: Callable[[str], None] = print, progress: bool = False,
               candidate_config: TrainConfig | None = None, baseline_only: bool = False) -> dict[str, Any]:
    """The whole sweep into ``out`` (JSON), resuming from the cells ``out`` already holds.
    ``candidate_config``: the candidate LightGCN's (default: as ``pretrain_step`` trains it).
    ``baseline_only``: PN-GNN alone, no cells: another split's baseline, so that a sweep run on
    one split (a sweep costs a training a cell) still has a split spread to be read against."""
    cfg = cfg.with_overrides(eval_every=0, patience=0)  # the validation part is the answerer's
    record = _load(out, plan, cfg)
    hold_out(settings, plan)
    if "baseline" not in record:
        split = masked_held_out(settings, plan, load_split_step(settings, plan.dataset, plan.seed))
        outcome = train_evaluate_step(split, plan.method, cfg, progress=progress)
        record["baseline"] = outcome.metrics
        write_json_atomic(out, record)
        echo(outcome.summary(" (what-if train part)"))
    if baseline_only:
        return record
    largest = None if None in plan.users else max(u for u in plan.users if u is not None)
    pretrain_step(settings, plan.dataset, plan.seed, largest, users_by=plan.users_by, progress=progress,
                  candidate_config=candidate_config)
    done = {(c["p"], c["users"]) for c in record["cells"]}
    for users in plan.users:
        for p in plan.ps:
            if (p, users or 0) in done:
                continue
            cell = run_cell(settings, plan, cfg, p, users, record["baseline"], progress)
            record["cells"].append(cell)
            write_json_atomic(out, record)
            shown = ", ".join(f"{k} {v:+.4f}" for k, v in cell["lift"].items())
            echo(f"p {p:.2f}, {users or 'all'} users: like precision {cell['like_precision']:.3f}, "
                 f"{cell['positive_edges']} + {cell['negative_edges']} edges; lift {shown}")
    return record


def _load(out: Path, plan: WhatIfPlan, cfg: TrainConfig) -> dict[str, Any]:
    header = {"dataset": plan.dataset, "seed": plan.seed, "holdout": plan.holdout, "users_by": plan.users_by,
              "answer_seed": plan.answer_seed, "dislikes": plan.dislikes, "held_out_masked": True,
              "config": cfg.to_dict(), "prompt_version": PROMPT_VERSION, "method": plan.method}
    if out.is_file():
        old = {"method": "pngnn", **json.loads(out.read_text())}  # a sweep from before the choice: PN-GNN's
        if {k: old.get(k) for k in header} == json.loads(json.dumps(header)):
            return old
        raise PngnnError(f"{out} holds a what-if sweep of other settings; pass another --out or delete it")
    return {**header, "commit": git_commit(), "label": "simulated answerer (what-if), not an LLM", "cells": []}


def sweep_figure(record: dict[str, Any], metric: str = "recall@20",
                 spreads: tuple[float, float] | None = None) -> Figure:
    """Lift of the llm- model over its base (PN-GNN or PN-EASE) against the answerer's accuracy,
    one line per user count, overall and on the sparsest 10% of users; ``spreads`` (the base's std
    over splits, overall and sparse) as a dotted line: a lift below it is within split noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = WHATIF_METHODS[record.get("method", "pngnn")]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.9), sharey=True)
    cells = sorted(record["cells"], key=lambda c: (c["users"], c["p"]))
    for users in sorted({c["users"] for c in cells}, key=lambda u: (u == 0, u)):  # as the table: all last
        rows = [c for c in cells if c["users"] == users]
        for ax, key in zip(axes, (metric, f"{SPARSEST}/{metric}"), strict=True):
            ax.plot([c["p"] for c in rows], [c["lift"].get(key, float("nan")) for c in rows], marker="o",
                    label=f"{users or 'all'} users")
    for i, (ax, title) in enumerate(zip(axes, ("all users", "sparsest 10% of users"), strict=True)):
        ax.axhline(0.0, color="grey", lw=0.8)
        if spreads is not None and np.isfinite(spreads[i]):
            ax.axhline(spreads[i], color="black", ls=":", lw=1.0, label=f"{name} split spread")
        ax.set_title(f"{title}: {metric} lift")
        ax.set_xlabel("answerer accuracy p")
    axes[0].set_ylabel(f"LLM-{name} - {name} (test)")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)  # below: covers no point
    fig.suptitle(f"What-if on {record['dataset']} split {record['seed']} (simulated answerer, not an LLM)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def sweep_plot(record: dict[str, Any], path: Path, metric: str = "recall@20",
               spreads: tuple[float, float] | None = None) -> Path:
    """``sweep_figure`` as a PNG."""
    import matplotlib.pyplot as plt

    fig = sweep_figure(record, metric, spreads)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sweep_to_files(settings: Settings, plan: WhatIfPlan, cfg: TrainConfig, out: Path | None = None,
                   echo: Callable[[str], None] = print, progress: bool = False, baseline_only: bool = False) -> Path:
    """``pngnn whatif``: the sweep on its own DuckDB file beside ``PNGNN_DB`` (the held-out part
    must not leak into the real splits), on the settings' device; its JSON (default
    ``results/whatif/<dataset>/<users-by>-<aug-mode>[-likes]/seed<N>.json``) and plot beside it,
    with the split spread of the baselines of the same settings in that folder."""
    resolve_device(settings.device)  # a GPU that is not there: an error before any work
    settings = settings.model_copy(update={"db_path": settings.db_path.with_name(f"whatif-{plan.dataset}.duckdb")})
    variant = (f"{plan.users_by}-{cfg.aug_mode}" if plan.method == "pngnn" else f"{plan.method}-{plan.users_by}") + (
        "" if plan.dislikes else "-likes")
    out = out or Path("results") / "whatif" / plan.dataset / variant / f"seed{plan.seed}.json"
    with use_device(settings.device):
        record = run_whatif(settings, plan, cfg, out, echo=echo, progress=progress, baseline_only=baseline_only)
    if not record["cells"]:
        echo(f"-> {out} (baseline only)")
        return out
    same = (record["config"], record["holdout"])
    siblings = [json.loads(f.read_text()) for f in sorted(out.parent.glob("seed*.json"))]
    spreads = split_spreads([r for r in siblings if (r.get("config"), r.get("holdout")) == same] or [record])
    echo(f"-> {out}, {sweep_plot(record, out.with_suffix('.png'), spreads=spreads)}")
    return out


def parse_user_counts(values: Sequence[int]) -> tuple[int | None, ...]:
    """``--users`` values, 0 meaning every user."""
    return tuple(None if v == 0 else v for v in values)


def sweep_table(records: Sequence[dict[str, Any]], metric: str = "recall@20", price: Price | None = None
                ) -> pl.DataFrame:
    """The sweeps of several splits side by side: per (users, p), the answers' like precision and
    the lift of the llm- model over its base (mean ± std over splits), overall and on the sparsest
    10%, next to the split spread of the base itself (std over splits): a lift below it is noise.
    ``price``: also what a cell's prompts cost, and that cost per 0.001 of the mean lift (none
    where the mean lift is not positive)."""
    rows = [{"split": r["seed"], "users": c["users"], "p": c["p"], "like_precision": c["like_precision"],
             "like_base_rate": c.get("like_base_rate", float("nan")), "lift": c["lift"].get(metric),
             "sparse_lift": c["lift"].get(f"{SPARSEST}/{metric}"), "prompts": c.get("prompts")}
            for r in records for c in r["cells"]]
    if not rows:
        raise PngnnError("no what-if cells to report; run `pngnn whatif` first")
    frame = pl.DataFrame(rows)
    base_std, sparse_std = split_spreads(records, metric)

    def pm(col: str) -> pl.Expr:  # one split has no std: a '± 0' would read as a measured zero
        mean = pl.col(col).mean().round(4)
        return pl.when(pl.len() > 1).then(pl.format("{} ± {}", mean, pl.col(col).std().round(4))) \
            .otherwise(mean.cast(pl.String))

    def above(col: str, spread: float, trail: str = "") -> pl.Expr:  # trail: two columns, two names
        if not np.isfinite(spread):
            return pl.lit("-").alias(f"above spread (one split){trail}")
        return (pl.col(col).mean() > spread).alias(f"above spread {spread:.4f}{trail}")

    out = frame.group_by("users", "p").agg(
        pl.len().alias("splits"), pl.col("like_precision").mean().round(3),
        pl.col("like_base_rate").mean().round(3), pm("lift").alias(f"{metric} lift"), above("lift", base_std),
        pm("sparse_lift").alias(f"sparsest 10% {metric} lift"), above("sparse_lift", sparse_std, " "),
        pl.col("prompts").cast(pl.Float64).mean().round(0).cast(pl.Int64), pl.col("lift").mean().alias("mean_lift"),
    ).sort(pl.col("users") == 0, "users", "p")  # fewest users asked first, every user (0) last
    if price is not None:
        out = out.with_columns(
            pl.col("prompts").map_elements(lambda n: round(price.cost(n), 2), return_dtype=pl.Float64)
            .alias("cost USD"),
            pl.struct("prompts", "mean_lift").map_elements(
                lambda r: _usd(None if None in (r["prompts"], r["mean_lift"]) else price.per_gain(r["prompts"],
                                                                                                   r["mean_lift"])),
                return_dtype=pl.String)
            .alias(f"USD per 0.001 {metric}"))
    return out.drop("mean_lift").with_columns(pl.col("users").cast(pl.String).replace("0", "all"))


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def whatif_price(settings: Settings, dataset: str, usd_per_million: float, tokens_per_prompt: float | None = None,
                 echo: Callable[[str], None] = print) -> Price:
    """The price the what-if's cells are costed at: ``tokens_per_prompt`` as given, else the mean
    usage a real LLM's server reported for ``dataset``'s prompts in ``settings.db_path`` (said in
    one line, with how many answers it is the mean of)."""
    check_price(usd_per_million, tokens_per_prompt)  # before any file is read
    if tokens_per_prompt is None:
        if not settings.db_path.is_file():
            raise PngnnError(f"no DuckDB file at {settings.db_path} to read the LLM's token usage from",
                             "set PNGNN_DB to the file your augmentation wrote, or give --tokens-per-prompt")
        with Store(settings.db_path, read_only=True) as store:
            usage = token_usage(store, dataset)
        tokens_per_prompt = usage.per_prompt
        echo(f"tokens a prompt: {usage.per_prompt:.0f} ({usage.prompt_tokens:.0f} in, {usage.completion_tokens:.0f} "
             f"out), the mean of {usage.prompts} answers by {usage.models} ({settings.db_path})")
    return Price(usd_per_million, tokens_per_prompt)


def split_spreads(records: Sequence[dict[str, Any]], metric: str = "recall@20") -> tuple[float, float]:
    """The base model's own std over splits (sample std), overall and on the sparsest 10%, from every
    record's baseline, baseline-only ones included; with one split there is none (NaN)."""
    def spread(key: str) -> float:
        values = [r["baseline"][key] for r in records if "baseline" in r]
        return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")

    return spread(metric), spread(f"{SPARSEST}/{metric}")


def load_sweeps(results_dir: Path, dataset: str) -> dict[str, list[dict[str, Any]]]:
    """Every sweep under ``results/whatif/<dataset>/<variant>/seed*.json``, by variant."""
    root = results_dir / "whatif" / dataset
    sweeps = {d.name: [json.loads(f.read_text()) for f in sorted(d.glob("seed*.json"))]
              for d in sorted(root.glob("*")) if d.is_dir()}
    sweeps = {k: v for k, v in sweeps.items() if v}
    if not sweeps:
        raise PngnnError(f"no what-if sweeps for {dataset} in {root}; run `pngnn whatif --dataset {dataset}` first")
    return sweeps


def sweeps_report(results_dir: Path, dataset: str, price: Price | None = None) -> str:
    """``pngnn report --whatif``: every variant's sweeps as one table each, labelled as what they
    are; with ``price``, each cell's cost at it."""
    from pngnn.evaluation.tables import to_markdown

    sweeps = load_sweeps(results_dir, dataset)
    priced = "" if price is None else (f", priced at {price.tokens_per_prompt:.0f} tokens a prompt and "
                                       f"{price.usd_per_million:g} USD a million tokens")
    return "\n".join(f"\nwhat-if {dataset} {variant} (simulated answerer, not an LLM{priced}):\n\n"
                     + to_markdown(sweep_table(records, price=price)) for variant, records in sweeps.items())
