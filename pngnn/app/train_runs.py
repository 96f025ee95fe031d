"""``pngnn train`` as one library call: a method on the split seeds of a profile, each run
written as results JSON, tracked in MLflow when asked, resumed from its checkpoint.

Why here and not in the command: everything a seed needs is checked before the first seed
trains (bad settings, a result it must not replace, ``--resume`` with nothing to resume, a
dead MLflow server), and that order is the behaviour worth testing without a terminal.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pngnn.augment.edges import EdgeSource, dataset_prompt_version, load_split_step
from pngnn.core.config import check_seeds
from pngnn.core.constants import CHECKPOINT_EVERY
from pngnn.core.profiles import get_profile
from pngnn.core.settings import Settings, llm_settings, quiet_environment
from pngnn.data.prepare import ingest_step, split_step
from pngnn.data.protocols import check_protocol
from pngnn.evaluation.results import check_replaceable, result_path, write_per_user, write_result
from pngnn.training.checkpoints import Checkpointer, check_checkpoint_options
from pngnn.training.device import resolve_device, use_device
from pngnn.training.methods import NEEDS_AUGMENTATION, check_method
from pngnn.training.outcome import RunOutcome, train_evaluate_step

Echo = Callable[..., None]


@dataclass(frozen=True)
class TrainRequest:
    """What ``pngnn train`` was asked: ``None`` means the profile's (method, dataset, seeds) or
    the environment's (LLM model, prompt version)."""

    profile: str = "quick"
    method: str | None = None
    dataset: str | None = None
    seeds: list[int] = field(default_factory=list)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    results_dir: Path = Path("results")
    tag: str = ""
    track: bool = False
    llm_model: str | None = None
    prompt_version: str | None = None
    force: bool = False
    checkpoint_every: int = CHECKPOINT_EVERY
    resume: bool | None = None
    download: bool = True
    split_protocol: str | None = None  # None: the profile's (random unless a profile says otherwise)
    last_n: int | None = None


def train_seeds(settings: Settings, request: TrainRequest, echo: Echo, progress: bool = False) -> list[Path]:
    """Train and evaluate the request's method on each split seed; the results files written.

    A KeyboardInterrupt is echoed with what a rerun will do (resume or start over) and raised on."""
    training_device = resolve_device(settings.device)  # a GPU that is not there: an error before any work
    prof = get_profile(request.profile, settings)
    if request.split_protocol is not None or request.last_n is not None:
        prof = replace(prof, split_protocol=check_protocol(request.split_protocol or prof.split_protocol,
                                                           request.last_n or prof.last_n),
                       last_n=request.last_n or prof.last_n)
    # A split by time is another experiment than the paper's random one: its records go beside, not over them.
    tag = request.tag or ("" if prof.split_protocol == "random" else prof.split_protocol)
    method = check_method(request.method or prof.method or "lightgcn")
    ds = request.dataset or prof.dataset
    runs = {s: (prof.config_for(s).with_overrides(**request.overrides),
                result_path(request.results_dir, ds, method, s, tag))
            for s in check_seeds(request.seeds or prof.seeds)}
    for cfg, path in runs.values():  # bad settings, or a result it must not replace: before any work
        check_replaceable(path, cfg.to_dict(), request.force)
        check_checkpoint_options(path, request.checkpoint_every, request.resume)
    train: Callable[..., RunOutcome] = train_evaluate_step
    if request.track:
        from pngnn.core.preflight import check_mlflow
        from pngnn.tracking.registry import model_name
        from pngnn.tracking.runs import tracked_run

        quiet_environment()  # MLflow's own "View experiment at" line opens the GenAI overview: ours is printed
        check_mlflow(settings.mlflow_uri)
        train = functools.partial(tracked_run, settings, profile=request.profile,
                                  registered_name=model_name(ds, method))
    ingest_step(settings, ds, allow_download=request.download)
    edges = (EdgeSource.of(llm_settings(model=request.llm_model, prompt_version=request.prompt_version),
                           default_version=dataset_prompt_version(settings, ds))
             if method in NEEDS_AUGMENTATION else None)
    written = []
    for s, (cfg, path) in runs.items():
        split_step(settings, ds, s, **prof.split_args())
        split = load_split_step(settings, ds, s, edges)
        checkpoint = Checkpointer.for_run(path, split, method, cfg, every=request.checkpoint_every,
                                          resume=request.resume)
        if checkpoint.restored is not None:
            echo(f"{method} {ds} seed {s}: resuming after epoch {checkpoint.restored['epoch']} ({checkpoint.path})",
                 err=True)
        try:
            with use_device(training_device):
                outcome = train(split, method, cfg, progress=progress, checkpoint=checkpoint)
        except KeyboardInterrupt:
            echo(f"{method} {ds} seed {s}: {checkpoint.interrupted_hint()}", err=True)
            raise
        path = write_result(request.results_dir, {**outcome.record(), "profile": request.profile}, tag,
                            request.force)
        write_per_user(path, outcome.per_user)
        checkpoint.finish()
        echo(f"{outcome.summary()} -> {path}")
        if outcome.run_id is not None:
            from pngnn.tracking.urls import where_to_open

            echo(f"MLflow: {where_to_open(settings, outcome.run_id)}")
        written.append(path)
    return written
