"""Like precision of the embedded SmolLM2 on validation: greedy JSON answer vs its log-probabilities.

On a what-if split (``pngnn.app.whatif.hold_out``: 10 % of split 1's train ratings held out, the test
part untouched and never read, on a DuckDB file of its own), the candidate LightGCN trains on
what is left of train and the sparsest users are asked once, by the embedded llama.cpp server,
with ``scoring=logprobs`` (one request per prompt returns the JSON answer and the log-probabilities
of its tokens). For each prompt the like is then read three ways:

* ``greedy``: the JSON answer's like (what ``scoring=answer`` merges);
* ``raw_logprob``: the argmax of the like's log-probabilities over the candidate numbers;
* ``debiased_logprob``: that argmax after subtracting each shown position's mean over the
  prompts, never the answer's dislike (what ``scoring=logprobs`` merges).

Like precision: share of likes that are held-out likes (rating > 3.5 in the held-out part),
against the base rate (share of shown candidates that are held-out likes), with counts and a
binomial standard error; for the two log-probability scorers also the pairwise AUC of the
held-out likes against the other candidates of their prompt (0.5: chance). Writes
benchmarks/results/like_precision.json (one entry per dataset and user count).

    PNGNN_DB=pngnn-data/pngnn.duckdb .venv/bin/python benchmarks/bench_like_precision.py \
        --dataset ml-100k --users 100
    PNGNN_DB=pngnn-data/pngnn.duckdb .venv/bin/python benchmarks/bench_like_precision.py \
        --dataset ml-1m --users 600
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pngnn.app.whatif import WhatIfPlan, hold_out
from pngnn.augment.logprobs import debiased_likes, parse_scores, raw_likes, score_matrix
from pngnn.augment.prompts import PROMPT_VERSION
from pngnn.augment.step import augment_step, pretrain_step
from pngnn.core.constants import LIKE_THRESHOLD, LOCAL_LLM_MODEL
from pngnn.core.provenance import git_commit
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data.store import Store
from pngnn.evaluation.results import write_json_atomic

QUERY = """
SELECT p.user_id, p.key, p.items, c.like_idx, c.dislike_idx, c.scores
FROM llm_prompts p JOIN llm_cache c ON c.key = p.key
WHERE p.dataset = $dataset AND p.seed = $seed AND p.model = $model AND p.prompt_version = $prompt_version
  AND c.status = 'ok' AND c.scores IS NOT NULL
ORDER BY p.user_id
"""


def _rate(hits: np.ndarray) -> dict[str, float | int]:
    n = int(hits.size)
    p = float(hits.mean()) if n else float("nan")
    return {"precision": round(p, 4), "hits": int(hits.sum()), "n": n,
            "se": round(math.sqrt(p * (1 - p) / n), 4) if n else float("nan")}


def pairwise_auc(scores: np.ndarray, truth: np.ndarray, shown: np.ndarray) -> dict[str, float | int]:
    """Within each prompt, how often a held-out like scores above a shown candidate that is not
    one (ties half): 0.5 is chance. It uses every candidate's score, not only the argmax, so it
    separates scorers on far fewer prompts than precision (a handful of likes per 100 prompts)."""
    pos = truth & shown
    neg = ~truth & shown
    pairs = pos[:, :, None] & neg[:, None, :]
    s = np.nan_to_num(scores, nan=-np.inf)
    wins = (s[:, :, None] > s[:, None, :]) & pairs
    ties = (s[:, :, None] == s[:, None, :]) & pairs
    n = int(pairs.sum())
    return {"auc": round(float((wins.sum() + 0.5 * ties.sum()) / n), 4) if n else float("nan"), "pairs": n}


def like_precisions(rows: pl.DataFrame, held_out: pl.DataFrame, threshold: float = LIKE_THRESHOLD) -> dict[str, Any]:
    """The three likes' precision and the base rate over ``rows`` (prompts with scores)."""
    items = score_matrix([[float(v) for v in r] for r in rows["items"].to_list()])  # NaN-padded item ids
    liked = {(int(u), int(i)) for u, i, r in held_out.iter_rows() if r > threshold}
    users = rows["user_id"].to_numpy()
    truth = np.array([[(int(u), int(i)) in liked if not np.isnan(i) else False for i in row]
                      for u, row in zip(users, items, strict=True)])
    shown = ~np.isnan(items)
    scores = score_matrix([parse_scores(t) or [] for t in rows["scores"]])
    dislike = rows["dislike_idx"].to_numpy().astype(np.int64)
    picks = {"greedy": rows["like_idx"].to_numpy().astype(np.int64),
             "raw_logprob": raw_likes(scores),
             "debiased_logprob": debiased_likes(scores, dislike)}
    at = np.arange(len(rows))
    centred = scores - np.nanmean(scores, axis=0, keepdims=True)
    auc = {"raw_logprob": pairwise_auc(scores, truth, shown), "debiased_logprob": pairwise_auc(centred, truth, shown)}
    out: dict[str, Any] = {"prompts": len(rows), "base_rate": _rate(truth[shown]),
                           "prompts_with_a_held_out_like": int(truth.any(axis=1).sum())}
    for name, like in picks.items():
        out[name] = {**_rate(truth[at, like - 1]),
                     "share_position_1": round(float((like == 1).mean()), 4),
                     "positions_used": int(np.unique(like).size), **auc.get(name, {})}
    return out


def run(dataset: str, users: int, seed: int, db: Path, ask: bool = True) -> dict[str, Any]:
    """Hold out, train the candidate LightGCN, ask, read: one dataset's entry. ``ask`` False:
    read what the cache holds of an earlier (possibly unfinished) run, asking nothing."""
    settings = Settings(db_path=db.with_name(f"whatif-{dataset}.duckdb"))
    plan = WhatIfPlan(dataset=dataset, seed=seed, ps=(0.0,), users=(users,), holdout=0.1, users_by="sparsest")
    t0 = time.perf_counter()
    held: dict[str, Any] = {}
    pretrain: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    if ask:
        held = hold_out(settings, plan)
        pretrain = pretrain_step(settings, dataset, seed, users, users_by="sparsest", progress=False)
        llm = LLMSettings(users=users, users_by="sparsest", scoring="logprobs", base_url=None)
        counts = augment_step(settings, dataset, seed, llm, progress=False, merge=False)
    with Store(settings.db_path) as store:
        if not ask:
            held = {"held_out": store.scalar("SELECT count(*) FROM held_out_ratings WHERE dataset = $dataset AND "
                                             "seed = $seed", dataset=dataset, seed=seed)}
        rows = store.query_sql(QUERY, dataset=dataset, seed=seed, model=LOCAL_LLM_MODEL,
                               prompt_version=PROMPT_VERSION)
        asked = store.scalar("SELECT count(DISTINCT key) FROM llm_prompts WHERE dataset = $dataset AND seed = $seed "
                             "AND model = $model AND prompt_version = $prompt_version", dataset=dataset, seed=seed,
                             model=LOCAL_LLM_MODEL, prompt_version=PROMPT_VERSION)
        held_out = store.query_sql("SELECT user_id, item_id, rating FROM held_out_ratings WHERE dataset = $dataset "
                                   "AND seed = $seed", dataset=dataset, seed=seed)
    return {"dataset": dataset, "seed": seed, "users": users, "users_by": "sparsest", "holdout": plan.holdout,
            "held_out_ratings": held["held_out"], "prompts_asked": asked, "threshold": LIKE_THRESHOLD,
            "model": LOCAL_LLM_MODEL,
            "prompt_version": PROMPT_VERSION, "candidate_lightgcn": pretrain,
            "augment": {k: v for k, v in counts.items() if k in ("prompts", "usable", "sent", "cached", "invalid",
                                                                   "failed", "seconds")},
            "seconds": round(time.perf_counter() - t0, 1), **like_precisions(rows, held_out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/like_precision.json"))
    parser.add_argument("--no-ask", action="store_true",
                        help="report what the cache holds (an unfinished run's answers so far); ask nothing")
    args = parser.parse_args()
    db = Path(os.environ.get("PNGNN_DB", "pngnn-data/pngnn.duckdb"))
    entry = run(args.dataset, args.users, args.seed, db, ask=not args.no_ask)
    record = json.loads(args.out.read_text()) if args.out.is_file() else {}
    name = f"{args.dataset}-{args.users}"
    earlier = record.get(name, {})
    kept = {k: earlier[k] for k in ("candidate_lightgcn", "augment") if args.no_ask and k in earlier}
    record[name] = {**entry, **kept, "commit": git_commit(), "machine": platform.machine(), "cpus": os.cpu_count()}
    write_json_atomic(args.out, record)
    shown = {k: entry[k] for k in ("base_rate", "greedy", "raw_logprob", "debiased_logprob")}
    print(json.dumps(shown, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
