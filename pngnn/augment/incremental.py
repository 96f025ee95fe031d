"""A re-augmentation that grows coverage at a bounded cost: ask only the users not asked yet or
whose train history changed since they were asked, at most ``budget`` prompts a run.

Each prompt link stores the fingerprint of the history it showed (``pngnn.augment.history``). A run
compares them with the current split: users never asked are *new*, users whose fingerprint differs
are *changed* (new interactions moved into their train part), the rest *unchanged* (their answer
stands, and costs nothing). New and changed users are asked in the order ``users_by`` names
(sparsest first by default: the users the LLM step is meant to help), up to the budget; the rest
wait for the next run. A changed user who waits keeps no edges meanwhile: their old answer was
given on a history that is no longer their train part (with a random split after an append, some
of it may now be test), so its prompt link is dropped before the merge.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from pngnn.augment.history import train_fingerprints
from pngnn.augment.prompts import hash_keys
from pngnn.augment.step import augment_step, merge_into_graph
from pngnn.augment.wording import check_prompt_version
from pngnn.core.config import TrainConfig
from pngnn.core.constants import USER_ORDERS, UserOrder
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data.split import SplitData
from pngnn.data.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromptPlan:
    """Who a run asks (``users``, user ids in asking order) and where every user stands."""

    users: list[int]
    new: int
    changed: int
    unchanged: int
    waiting: int  # new or changed users left for a later run (over the budget)

    def counts(self) -> dict[str, int]:
        out = asdict(self)
        out["asked_users"] = len(out.pop("users"))
        return {f"{k}_users" if not k.endswith("_users") else k: v for k, v in out.items()}


def user_status(store: Store, dataset: str, seed: int, model: str, prompt_version: str) -> pl.DataFrame:
    """(user_id, train_ratings, status): 'new', 'changed' or 'unchanged' for every user of the split,
    against the prompts this (model, prompt version) asked. A link stored without a fingerprint (asked
    before they were kept) counts as unchanged."""
    current = train_fingerprints(store, dataset, seed)
    asked = store.query_sql(
        "SELECT user_id, history_fp FROM llm_prompts WHERE dataset = $dataset AND seed = $seed AND model = $model "
        "AND prompt_version = $prompt_version", dataset=dataset, seed=seed, model=model, prompt_version=prompt_version)
    stored = asked.with_columns(pl.col("user_id").cast(pl.Int32)).group_by("user_id").agg(
        stored_fp=pl.col("history_fp").first(), legacy=pl.col("history_fp").is_null().any())
    joined = current.join(stored, on="user_id", how="left")
    status = (pl.when(pl.col("legacy").is_null()).then(pl.lit("new"))
              .when(pl.col("legacy") | (pl.col("stored_fp") == pl.col("history_fp"))).then(pl.lit("unchanged"))
              .otherwise(pl.lit("changed")))
    return joined.select("user_id", "train_ratings", status=status)


def plan_prompts(status: pl.DataFrame, budget: int, users_by: UserOrder = "sparsest",
                 order_seed: int = 0) -> PromptPlan:
    """Who to ask: the new and changed users, sparsest first (``users_by="sparsest"``; ties and the
    ``random`` order by a seeded hash of the user), at most ``budget`` of them."""
    if budget < 0:
        raise PngnnError(f"the LLM budget must be 0 or more prompts a run, got {budget}",
                         "set llm_budget to the prompts one run may send (0: ask nobody, retrain only)")
    if users_by not in USER_ORDERS:
        raise PngnnError(f"unknown user order '{users_by}'", f"choose one of: {', '.join(USER_ORDERS)}")
    eligible = status.filter(pl.col("status") != "unchanged")
    ids = eligible["user_id"].to_numpy().astype(np.int64)
    tie = hash_keys(ids, np.zeros_like(ids), order_seed, 3)
    primary = eligible["train_ratings"].to_numpy() if users_by == "sparsest" else np.zeros(len(ids), np.int64)
    order = np.lexsort((ids, tie, primary))
    chosen = ids[order[:budget]].tolist()
    n = status["status"].value_counts()
    by = dict(zip(n["status"].to_list(), n["count"].to_list(), strict=True))
    return PromptPlan(users=chosen, new=by.get("new", 0), changed=by.get("changed", 0),
                      unchanged=by.get("unchanged", 0), waiting=len(ids) - len(chosen))


def drop_stale_prompts(store: Store, dataset: str, seed: int, model: str, prompt_version: str) -> int:
    """Drop the prompt links of users whose train history changed since they were asked (their
    answers no longer stand for this split); returns how many users lost theirs."""
    status = user_status(store, dataset, seed, model, prompt_version)
    stale = status.filter(pl.col("status") == "changed").select("user_id")
    if not stale.height:
        return 0
    store.register("stale_users", stale)
    try:
        with store.transaction():
            store.run_sql("DELETE FROM llm_prompts WHERE dataset = $dataset AND seed = $seed AND model = $model "
                          "AND prompt_version = $prompt_version AND user_id IN (SELECT user_id FROM stale_users)",
                          dataset=dataset, seed=seed, model=model, prompt_version=prompt_version)
    finally:
        store.unregister("stale_users")
    return stale.height


def reaugment_split(settings: Settings, split: SplitData, llm: LLMSettings, budget: int, *,
                    candidate_config: TrainConfig | None = None, run_id: str | None = None,
                    progress: bool = False) -> dict[str, Any]:
    """Plan, ask the planned users (candidates from a LightGCN trained on this split), drop the links
    of changed users still waiting, merge; returns the plan's counts, augment's and merge's."""
    dataset, seed = split.dataset, split.seed
    with Store(settings.db_path) as store:
        version = check_prompt_version(store, dataset, llm)
        plan = plan_prompts(user_status(store, dataset, seed, llm.model, version), budget, llm.users_by)
    counts: dict[str, Any] = {**plan.counts(), "model": llm.model, "prompt_version": version, "budget": budget}
    if plan.users:
        out = augment_step(settings, dataset, seed, llm, candidate_config=candidate_config, progress=progress,
                           merge=False, split=split, user_ids=plan.users, fresh_candidates=True)
        counts.update({k: v for k, v in out.items() if k not in counts})
        counts["model"] = out["model"]
    with Store(settings.db_path) as store:
        counts["dropped_stale_users"] = drop_stale_prompts(store, dataset, seed, counts["model"], version)
        # always merged: with every link dropped, the split's old edges must go too
        counts.update(merge_into_graph(store, dataset, seed, counts["model"], run_id, scoring=llm.scoring))
    log.info("re-augmentation of %s seed %s: %s", dataset, seed, counts)
    return counts
