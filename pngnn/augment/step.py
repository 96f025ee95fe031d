"""The augmentation of one split as one call, shared by ``pngnn augment`` and the pipeline's tasks.

Candidates (stored ones when every selected user has them, else from a briefly trained
LightGCN), the LLM (a configured ``base_url``, or the embedded llama.cpp server, started
only when some prompt is not cached and stopped afterwards), the merge, and the edges'
precision. A fully cached rerun trains nothing and starts no server. A run with too many
prompts left without a usable answer fails before the merge (``check_failures``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pngnn.augment.cache import CacheEntry
from pngnn.augment.candidates import (
    DEFAULT_CANDIDATES,
    candidates_frame,
    save_candidates,
    select_users,
)
from pngnn.augment.client import BatchCounts, Feed, LLMClient, Request
from pngnn.augment.merge import edge_precision, merge_augmented
from pngnn.augment.pipeline import augment, check_failures
from pngnn.augment.wording import check_prompt_version, wording_for
from pngnn.core.config import TrainConfig, check_seeds
from pngnn.core.constants import DEFAULT_RANKER, LLM_USERS, UserOrder
from pngnn.core.profiles import get_profile
from pngnn.core.settings import LLMSettings, Scoring, Settings
from pngnn.data.scale import rating_scale
from pngnn.data.split import SplitData, load_split
from pngnn.data.store import Store
from pngnn.training.device import use_device
from pngnn.training.methods import for_dataset

if TYPE_CHECKING:
    from pngnn.augment.local_server import LocalServer

log = logging.getLogger(__name__)


class _LocalServerClient:
    """Looks like an LLMClient; starts the embedded server on first use (``check``).

    The server takes llama.cpp's json_object form and answers one request at a time, whatever
    ``settings`` say."""

    def __init__(self, settings: LLMSettings, log_path: Path | None) -> None:
        self.settings = settings.with_overrides(schema_mode="json_object", concurrency=1)
        self._log_path = log_path
        self._server: LocalServer | None = None
        self._client: LLMClient | None = None

    @property
    def schema_mode(self) -> str:
        return self._client.schema_mode if self._client is not None else self.settings.schema_mode

    def check(self) -> None:
        from pngnn.augment.local_server import start_local_server

        self._server = start_local_server(log_path=self._log_path, model_alias=self.settings.model,
                                          n_threads=self.settings.threads)
        self.settings = self.settings.with_overrides(base_url=self._server.base_url)
        self._client = LLMClient(self.settings)
        self._client.check()

    def run_batch(self, requests: Feed, on_result: Callable[[CacheEntry], None], cached: int = 0, progress: bool = True,
                  total: int | None = None) -> BatchCounts:
        assert self._client is not None, "check() starts the server"
        return self._client.run_batch(requests, on_result, cached=cached, progress=progress, total=total)

    def process(self, request: Request) -> CacheEntry:
        assert self._client is not None, "check() starts the server"
        return self._client.process(request)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._server is not None:
            self._server.stop()


def candidate_ranker(seed: int, candidate_config: TrainConfig | None = None,
                     candidate_profile: str | None = None) -> tuple[TrainConfig, str, str | None]:
    """The candidate LightGCN's settings, the label its candidates are stored under, and the label
    stored candidates must carry to be reused (None: any).

    A named profile (``LLMSettings.candidates_profile``) insists on its own candidates: stored ones
    that another profile ranked are ranked again. Unnamed, the run reuses whatever is stored, as
    before the label was kept."""
    if candidate_profile is not None:
        return get_profile(candidate_profile).train.with_overrides(seed=seed), candidate_profile, candidate_profile
    if candidate_config is not None:
        return candidate_config, "custom", None
    return get_profile(DEFAULT_RANKER).train.with_overrides(seed=seed), DEFAULT_RANKER, None


def _candidates_stored(store: Store, dataset: str, seed: int, users: int | None, sample_seed: int,
                       users_by: UserOrder, user_ids: Sequence[int] | None = None,
                       ranker: str | None = None) -> bool:
    selected = select_users(store, dataset, user_ids, None if user_ids is not None else users, sample_seed,
                            by=users_by, seed=seed)
    store.register("step_users", selected.select("user_id"))
    try:
        missing = store.query_file("missing_candidates", dataset=dataset, seed=seed, ranker=ranker)["missing"][0]
    finally:
        store.unregister("step_users")
    return missing == 0


def pretrain_step(settings: Settings, dataset: str, seed: int, users: int | None = LLM_USERS, *, sample_seed: int = 0,
                  users_by: UserOrder = "sparsest", candidate_config: TrainConfig | None = None,
                  n_candidates: int = DEFAULT_CANDIDATES, progress: bool = True,
                  split: SplitData | None = None, candidate_profile: str | None = None) -> dict[str, Any]:
    """Train the candidate LightGCN on split ``seed`` and store the top-N unseen items of
    each selected user in DuckDB; a no-op when every selected user already has them (ranked by
    ``candidate_profile``'s LightGCN when one is named, see ``candidate_ranker``).

    Its own step so the pipeline can cache it: a rerun neither retrains nor re-ranks. ``split``:
    the split when the caller has loaded it (a flow loads each split once); default: read here.
    """
    from pngnn.training.train import train_lightgcn

    config, label, required = candidate_ranker(seed, candidate_config, candidate_profile)
    with Store(settings.db_path) as store:
        wording_for(store, dataset)  # a dataset the LLM cannot be asked about: refused before training
        selected = select_users(store, dataset, sample=users, sample_seed=sample_seed, by=users_by, seed=seed)
        if _candidates_stored(store, dataset, seed, users, sample_seed, users_by, ranker=required):
            return {"trained": False, "users": selected.height}
        split = split if split is not None else load_split(store, dataset, seed)
        cfg = for_dataset(config, split)
        log.info("training the candidate LightGCN (%s) for %s seed %s (%s epochs)", label, dataset, seed, cfg.epochs)
        with use_device(settings.device):
            model = train_lightgcn(split, cfg, progress=progress).model
            frame = candidates_frame(store, split, model, selected, n_candidates)
        save_candidates(store, dataset, seed, frame, label)
    return {"trained": True, "users": selected.height, "epochs": cfg.epochs}


def augment_step(
    settings: Settings,
    dataset: str,
    seed: int,
    llm: LLMSettings | None = None,
    *,
    sample_seed: int = 0,
    candidate_config: TrainConfig | None = None,
    self_consistency: bool = False,
    progress: bool = True,
    run_id: str | None = None,
    merge: bool = True,
    split: SplitData | None = None,
    user_ids: Sequence[int] | None = None,
    fresh_candidates: bool = False,
) -> dict[str, Any]:
    """Augment ``llm.users`` users (None: all; chosen by ``llm.users_by``) of split ``seed`` and merge the
    edges; returns counts (numbers) plus ``model``, ``prompt_version``, ``schema_mode``.

    ``llm`` (default: from the environment) with ``base_url`` None: the embedded SmolLM2
    server, serving under the name ``llm.model``. The candidate LightGCN, when one must be
    trained, uses ``candidate_config`` (default: the quick profile's settings with the split's seed).
    More than ``llm.max_failed_share`` of the prompts without a usable answer: a PngnnError (see
    ``check_failures``), the answers cached, nothing merged. ``split``: the split when the caller
    has loaded it; default: read here. ``user_ids``: exactly these users instead of ``llm.users``
    (a re-augmentation's plan); ``fresh_candidates``: rank their candidates with a LightGCN trained
    on this split even when some are stored (stored ones came from an older split).
    """
    llm = llm or LLMSettings()
    config, label, required = candidate_ranker(seed, candidate_config, llm.candidates_profile)
    with Store(settings.db_path) as store:
        check_prompt_version(store, dataset, llm)
    base_url, users = llm.base_url, llm.users
    if base_url is None:
        client: Any = _LocalServerClient(llm, settings.db_path.parent / "llama-server.log")
    else:
        client = LLMClient(llm)
    # The database is closed while the candidate model trains and while the LLM answers
    # (see ``augment``): a long augmentation does not lock other processes out of it.
    try:
        with Store(settings.db_path) as store:
            split = split if split is not None else load_split(store, dataset, seed)
            stored = not fresh_candidates and _candidates_stored(store, dataset, seed, users, sample_seed,
                                                                 llm.users_by, user_ids, ranker=required)
        lightgcn = None
        if not stored:
            from pngnn.training.train import train_lightgcn

            if base_url is not None:
                client.check()  # a fresh run will ask: fail on a dead server before training
            cfg = for_dataset(config, split)
            log.info("training the candidate LightGCN (%s) for %s seed %s (%s epochs)", label, dataset, seed,
                     cfg.epochs)
            lightgcn = train_lightgcn(split, cfg, progress=progress).model
        with Store(settings.db_path) as store:
            summary = augment(store, dataset, seed, lightgcn, client.settings, users=user_ids,
                              sample=users if user_ids is None else None,
                              sample_seed=sample_seed, users_by=llm.users_by, split=split,
                              self_consistency=self_consistency, client=client, progress=progress,
                              ranker=label)
            result: dict[str, Any] = summary.to_dict()
            check_failures(summary, llm.max_failed_share)
            if merge:
                result.update(merge_into_graph(store, dataset, seed, summary.model, run_id, scoring=llm.scoring))
    finally:
        client.close()
    return result


def edges_line(dataset: str, seed: int, counts: dict[str, Any]) -> str:
    """What training on this split will get, and what a rerun would still ask (augment's and merge's counts)."""
    positive, negative = counts.get("positive_edges", 0), counts.get("negative_edges", 0)
    line = (f"{dataset} seed {seed}: training gets {positive + negative} LLM edges ({positive} positive, "
            f"{negative} negative) from {counts['usable']} usable answers to {counts['prompts']} prompts")
    if counts["failed_transient"] or counts["failed_permanent"]:
        line += (f"; no answer yet for {counts['failed_transient']} (transient: a rerun asks them again) and "
                 f"{counts['failed_permanent']} (permanent: --retry-failed asks them again)")
    return line


def merge_into_graph(store: Store, dataset: str, seed: int, model: str, run_id: str | None = None,
                     scoring: Scoring = "answer") -> dict[str, Any]:
    """Cached answers -> ``augmented_edges`` (likes positive, dislikes negative; the likes chosen
    by ``scoring``), plus the edges' own precision against held-out ratings (liked: above the
    dataset's threshold) when there are any."""
    version, threshold = wording_for(store, dataset).version, rating_scale(store, dataset).threshold
    edges = merge_augmented(store, dataset, seed, model, version, run_id, scoring=scoring)
    result: dict[str, Any] = {"positive_edges": edges["positive"], "negative_edges": edges["negative"],
                              "dropped_rated": edges["dropped_rated"], "scoring": scoring,
                              "scored_likes": edges["scored"]}
    if edges["positive"] or edges["negative"]:
        precision = edge_precision(store, dataset, seed, model, version, threshold=threshold, scoring=scoring)
        result.update({k: v for k, v in precision.items() if k not in ("n_answers", "n_candidates")})
        result["answers"] = int(precision["n_answers"])  # usable answers, cached or new
    return result


def merge_step(settings: Settings, dataset: str, seed: int, model: str, run_id: str | None = None,
               scoring: Scoring = "answer") -> dict[str, Any]:
    """The pipeline's merge step on its own connection (see ``merge_into_graph``); with ``run_id``
    the split's edges and their provenance also go to that MLflow run as a Parquet artifact."""
    with Store(settings.db_path) as store:
        counts = merge_into_graph(store, dataset, seed, model, run_id, scoring=scoring)
        edges = store.query_file("augmented_edges", dataset=dataset, seed=seed) if run_id is not None else None
    if edges is not None:
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"augmented_edges_seed{seed}.parquet"
            edges.write_parquet(path)
            mlflow.MlflowClient(settings.mlflow_uri).log_artifact(run_id, str(path), "augmentation")
    return counts


def augment_seeds(settings: Settings, dataset: str, seeds: list[int], llm: LLMSettings, results_dir: Path, *,
                  sample_seed: int = 0, self_consistency: bool = False, force: bool = False, download: bool = True,
                  progress: bool = False, echo: Callable[[str], None] = print) -> list[Path]:
    """``pngnn augment``: every seed's results file checked before any work, then per split seed the
    augmentation (``augment_step``), its counts as results JSON and what training will get."""
    from pngnn.data.prepare import ingest_step, split_step
    from pngnn.evaluation.results import augmentation_path, check_replaceable, write_augmentation

    if llm.candidates_profile is not None:
        get_profile(llm.candidates_profile)  # an unknown profile: one line before any work
    for s in check_seeds(seeds):
        check_replaceable(augmentation_path(results_dir, dataset, llm.model, s, llm.candidates_profile), force=force)
    ingest_step(settings, dataset, allow_download=download)
    written = []
    for s in seeds:
        split_step(settings, dataset, s)
        out = augment_step(settings, dataset, s, llm, sample_seed=sample_seed, self_consistency=self_consistency,
                           progress=progress)
        written.append(write_augmentation(results_dir, {
            **out, "dataset": dataset, "seed": s, "users_requested": llm.users or 0, "users_by": llm.users_by,
            "candidates_profile": llm.candidates_profile or DEFAULT_RANKER,
            "sample_seed": sample_seed, "self_consistency": self_consistency}, force=True))  # checked above
        echo(f"{dataset} seed {s}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in out.items()) + f" -> {written[-1]}")
        echo(edges_line(dataset, s, out))
    return written
