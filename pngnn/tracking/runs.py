"""MLflow helpers: one experiment per dataset, parent and child runs, curves and plots.

MLflow is imported lazily so ``pngnn`` stays importable (and its tests runnable)
without an MLflow server; the tracking URI always comes from ``Settings`` (an explicit
sqlite store by default, a server URL in bigger setups).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import numpy as np

from pngnn.core.config import TrainConfig
from pngnn.core.constants import KS, METRIC_NAMES
from pngnn.core.errors import PngnnError, TransientError
from pngnn.core.preflight import check_database, check_mlflow, is_postgres_url
from pngnn.core.runtime import torch_threads
from pngnn.core.settings import Settings
from pngnn.data.lineage import log_split_input
from pngnn.data.split import SplitData
from pngnn.evaluation.segments import LONG_TAIL, SPARSEST
from pngnn.training.checkpoints import Checkpointer, run_key
from pngnn.training.device import use_device
from pngnn.training.methods import check_method_fits, for_dataset, method_settings, train_method
from pngnn.training.outcome import RunOutcome, evaluate_step, per_user_frame, split_record
from pngnn.training.train import EpochLog, TrainResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from optuna import Study


def experiment_name(dataset: str) -> str:
    return f"pngnn-{dataset}"


# MLflow 3's UI opens an experiment of this kind on its runs and models (not on GenAI traces).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def artifact_location(settings: Settings) -> str | None:
    """Where a new experiment keeps its artifacts: beside the data (``<PNGNN_DB folder>/mlartifacts``)
    for a local store, never ``<cwd>/mlruns``; a tracking server decides for itself (None)."""
    if settings.mlflow_uri.startswith(("http://", "https://")):
        return None
    return (settings.db_path.parent / "mlartifacts").resolve().as_uri()


def bound_tracking_requests(settings: Settings) -> None:
    """MLflow's HTTP timeout and retries from the settings, unless the user set MLflow's own variables:
    a stopped tracking server then fails a run in seconds, not minutes."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(settings.mlflow_request_timeout_s))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.mlflow_request_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")


def tracking_outage(settings: Settings, exc: BaseException) -> TransientError | None:
    """One line for a tracking server that stopped answering (``exc`` or its causes), else None."""
    import requests
    from mlflow.exceptions import MlflowException

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, requests.exceptions.ConnectionError | requests.exceptions.Timeout) or (
                isinstance(seen, MlflowException) and "API request to" in seen.message
                and ("failed with exception" in seen.message or "Max retries exceeded" in seen.message)):
            return TransientError(
                f"the MLflow tracking server {settings.mlflow_uri} stopped answering during the run",
                "start it again (or point MLFLOW_TRACKING_URI at one that answers) and rerun the same command: a "
                "training with checkpoints resumes from its last one")
        seen = seen.__cause__ or seen.__context__
    return None


@contextmanager
def outage_in_words(settings: Settings) -> Iterator[None]:
    """A tracking server that stops answering inside the block ends it with ``tracking_outage``'s one
    line (a ``TransientError``: a Prefect task retries it), not MLflow's traceback."""
    try:
        yield
    except Exception as exc:
        outage = tracking_outage(settings, exc) if settings.mlflow_uri.startswith(("http://", "https://")) else None
        if outage is None:
            raise
        raise outage from None


@contextmanager
def one_store_creator(settings: Settings) -> Iterator[None]:
    """Processes that open a fresh MLflow sqlite store at once run its schema migrations at once,
    and all but one fail inside alembic: a file lock beside the store lets one in at a time (the
    migrations then find the schema made). Other stores need none."""
    if not settings.mlflow_uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    path = Path(settings.mlflow_uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def setup(settings: Settings, dataset: str) -> str:
    """Point MLflow at the configured store and select the dataset's experiment, creating it
    (artifacts beside the data, tagged as a model-training experiment) the first time."""
    import mlflow
    from mlflow.exceptions import MlflowException

    bound_tracking_requests(settings)
    if is_postgres_url(settings.mlflow_uri):  # else MLflow retries a dead database for minutes, then a traceback
        check_database(settings.mlflow_uri, "MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(settings.mlflow_uri)
    name = experiment_name(dataset)
    with one_store_creator(settings):  # the client opens (and, for a fresh file, creates) the store
        client = mlflow.MlflowClient()
        if client.get_experiment_by_name(name) is None:
            with contextlib.suppress(MlflowException):  # another process may create it in the meantime
                client.create_experiment(name, artifact_location=artifact_location(settings), tags=EXPERIMENT_KIND)
    exp = mlflow.set_experiment(name)
    return exp.experiment_id


@contextmanager
def parent_run(settings: Settings, dataset: str, name: str, tags: Mapping[str, str] | None = None,
               run_key: str | None = None) -> Iterator[str]:
    """A parent run (one pipeline or experiment invocation); yields its run id. ``run_key``: what a
    resumable invocation is (``pngnn tune --save-as NAME``): its start closes the runs a killed
    earlier start of the key left RUNNING, its own and its children's (tagged ``<key>/child``)."""
    import mlflow

    experiment_id = setup(settings, dataset)
    process = {"host": socket.gethostname(), "pid": str(os.getpid())}
    if run_key is not None:
        close_stale_runs(experiment_id, run_key, refuse_live=True)
        close_stale_runs(experiment_id, f"{run_key}/child")
        process["run_key"] = run_key
    with mlflow.start_run(run_name=name, tags={"kind": "parent", **process, **(tags or {})}) as run:
        yield run.info.run_id


def curve_plot(history: list[EpochLog], title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([e.epoch for e in history], [e.loss for e in history], marker=".", label="training loss")
    valid = [(e.epoch, e.valid["recall@20"]) for e in history if e.valid]
    if valid:
        ax2 = ax.twinx()
        ax2.plot(*zip(*valid, strict=True), color="tab:orange", marker="o", label="valid recall@20")
        ax2.set_ylabel("valid recall@20")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metrics_plot(metrics: Mapping[str, float], title: str, path: Path, ks=KS) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in METRIC_NAMES:
        ax.plot(list(ks), [metrics[f"{name}@{k}"] for k in ks], marker="o", label=name)
    ax.set_xlabel("K")
    ax.set_xticks(list(ks))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def segments_plot(metrics: Mapping[str, float], title: str, path: Path) -> Path:
    """Recall@20 and NDCG@20 by user-activity bucket, and long-tail recall@20: where a method gains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pngnn.evaluation.segments import LONG_TAIL, SEGMENTS

    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [s for s in SEGMENTS if f"{s}/recall@20" in metrics]
    x = list(range(len(names)))
    ax.bar([i - 0.2 for i in x], [metrics[f"{s}/recall@20"] for s in names], 0.4, label="recall@20")
    ax.bar([i + 0.2 for i in x], [metrics.get(f"{s}/ndcg@20", 0.0) for s in names], 0.4,
           label="ndcg@20 (long tail: none)")
    ax.set_xticks(x, [s.replace("users_", "") if s != LONG_TAIL else "long tail" for s in names])
    ax.set_title(f"{title}: by user activity (q1 = sparsest) and on long-tail items")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def log_training(result: TrainResult, method: str, split: SplitData, settings: Settings, log_model: bool = True,
                 registered_name: str | None = None) -> None:
    """The trained model (a pyfunc serving recommendations, ``pngnn.tracking.pyfunc``), its training
    curve, timings: into the active run."""
    import mlflow

    mlflow.log_metrics({"train_seconds": result.seconds, "best_epoch": result.best_epoch})
    summary = getattr(result.model, "attention_summary", None)
    if summary is not None:  # the two means as metrics (to compare runs by), the spreads beside them
        attention = summary()
        mlflow.log_metrics({k.removesuffix("_mean"): v for k, v in attention.items() if k.endswith("_mean")})
        mlflow.log_dict(attention, "attention.json")
    with tempfile.TemporaryDirectory() as tmp:
        if result.history:
            title = f"{method} {split.dataset} seed {split.seed}"
            plot = curve_plot(result.history, title, Path(tmp) / "training_curve.png")
            mlflow.log_artifact(str(plot), "plots")
    if log_model:
        from pngnn.tracking.pyfunc import log_recommender

        log_recommender(result.model, split, settings, method, registered_name)


# The segment metrics a run shows as metrics (the rest of the segment table is a logged table):
# the two a practitioner sorts by, the sparsest 10% of users' and the long tail's recall@20.
HEADLINE_SEGMENTS = (f"{SPARSEST}/recall@20", f"{LONG_TAIL}/recall@20")


def segment_metric_key(name: str) -> str:
    """A segment metric's MLflow name, without '/': MLflow's charts make a section of every prefix
    before a '/', so "long_tail/recall@20" opened the run page on one-bar sections."""
    segment, _, metric = name.partition("/")
    return f"segment_{segment}_{metric_key(metric)}"


def segment_frame(metrics: Mapping[str, float]) -> Any:
    """The segment table: one row per segment, one column per metric (n_users first)."""
    import pandas as pd

    rows: dict[str, dict[str, float]] = {}
    for name, value in metrics.items():
        segment, slash, metric = name.partition("/")
        if slash:
            rows.setdefault(segment, {})[metric] = value
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "segment"
    return frame.reset_index()


def log_evaluation(metrics: Mapping[str, float], seconds: float, title: str, config: Mapping[str, Any]) -> None:
    """Final P/R/NDCG@K and the headline segments as metrics; the whole segment table as an MLflow
    table (``segments.json``: the Artifacts and Evaluation views show it) and a plot; a
    P/R/NDCG-by-K plot, the metrics and config as JSON: into the active run."""
    import mlflow

    mlflow.log_metrics({metric_key(k): v for k, v in metrics.items() if "/" not in k})
    mlflow.log_metrics({segment_metric_key(k): metrics[k] for k in HEADLINE_SEGMENTS if k in metrics})
    mlflow.log_metric("eval_seconds", seconds)
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        (tmpd / "config.json").write_text(json.dumps(dict(config), indent=2))
        (tmpd / "metrics.json").write_text(json.dumps(dict(metrics), indent=2))
        mlflow.log_artifacts(str(tmpd))
        mlflow.log_artifact(str(metrics_plot(metrics, title, tmpd / "metrics_at_k.png")), "plots")
        if any("/" in k for k in metrics):
            mlflow.log_table(segment_frame(metrics), "segments.json")
            mlflow.log_artifact(str(segments_plot(metrics, title, tmpd / "metrics_by_segment.png")), "plots")


# MLflow sorts metric names as text (the runs table's columns, Compare, the chart picker), where
# "precision_at_10" comes before "precision_at_5": K is zero-padded to the digits of the largest
# K, so P@5, P@10, P@15, P@20 sort in order. Only MLflow's names change: the results JSON, the
# tables and the library keep "precision@5".
K_DIGITS = len(str(max(KS)))


def metric_key(name: str) -> str:
    """The MLflow name of a metric (MLflow names may not contain '@'): precision@5 -> precision_at_05."""
    base, at, k = name.partition("@")
    if not at:
        return name
    return f"{base}_at_{k.zfill(K_DIGITS) if k.isdigit() else k}"


def metric_name(key: str) -> str:
    """The metric an MLflow name stands for, padded or not (runs logged before the padding say
    precision_at_5): precision_at_05 -> precision@5."""
    base, at, k = key.rpartition("_at_")
    if not at or not k.isdigit():
        return key
    return f"{base}@{int(k)}"


def part_key(part: str) -> str:
    """A loss part's MLflow name. The models report the L2 penalty unweighted (the embeddings'
    squared norm, ~20 where the loss is ~0.2); as ``loss_l2`` it read as a loss term, so it is
    ``l2_norm``; the ranking parts keep ``loss_<part>``."""
    return "l2_norm" if part == "l2" else f"loss_{part}"


def epoch_logger() -> Callable[[EpochLog], None]:
    """Per-epoch loss (and validation metrics) into the active run, with the epoch as step."""
    import mlflow

    def on_epoch(e: EpochLog) -> None:
        metrics = {"loss": e.loss, "epoch_seconds": e.seconds, **{part_key(k): v for k, v in e.parts.items()}}
        metrics.update({f"valid_{metric_key(k)}": v for k, v in e.valid.items()})
        mlflow.log_metrics(metrics, step=e.epoch)

    return on_epoch


# Settings that only act when the split has a validation part (early stopping).
VALIDATION_SETTINGS = ("valid_metric", "patience", "eval_every")


def run_params(split: SplitData, method: str, cfg: TrainConfig, extra: Mapping[str, Any] | None = None) -> dict:
    """The settings the run used: the training seed as ``train_seed`` (beside ``split_seed``, a bare
    ``seed`` read as either), validation settings only where there is a validation part."""
    settings = method_settings(method, cfg)
    if "seed" in settings:
        settings["train_seed"] = settings.pop("seed")
    if len(split.valid) == 0:
        settings = {k: v for k, v in settings.items() if k not in VALIDATION_SETTINGS}
    return {**settings, "method": method, "dataset": split.dataset, "split_seed": split.seed,
            "n_users": split.n_users, "n_items": split.n_items, "n_train": len(split.train),
            "n_test": len(split.test), **(extra or {})}


def run_tags(split: SplitData, method: str, profile: str, cfg: TrainConfig | None = None) -> dict[str, str]:
    tags = {"method": method, "split": str(split.seed), "profile": profile, "dataset": split.dataset}
    if cfg is not None and "pngnn" in method:
        tags.update({"dual_bpr": cfg.dual_bpr, "b": str(cfg.b), "attention": str(cfg.attention)})
    return tags


def process_alive(host: str | None, pid: str | None) -> bool:
    """Whether the process a run was tagged with still runs. Only this machine's processes can
    be asked; one on another host counts as gone (one run of a key at a time is the contract)."""
    if host != socket.gethostname() or pid is None or not pid.isdigit():
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: gone for our purpose
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def close_stale_runs(experiment_id: str, key: str, refuse_live: bool = False) -> list[str]:
    """End as KILLED every RUNNING run of this run key whose process is gone (``kill -9``, a
    lost machine): nothing else would ever close it. Returns their ids. ``refuse_live``: a run of
    the key still held by another live process is an error (the same training twice at once would
    train in full twice and register two versions)."""
    import mlflow

    client = mlflow.MlflowClient()
    running = f"tags.run_key = '{key}' and attributes.status = 'RUNNING'"
    runs = client.search_runs([experiment_id], filter_string=running)
    stale = [r for r in runs if not process_alive(r.data.tags.get("host"), r.data.tags.get("pid"))]
    for r in stale:
        client.set_tag(r.info.run_id, "ended_by", "gone (closed by the next start of its run key)")
        client.set_terminated(r.info.run_id, "KILLED")
    me = (socket.gethostname(), str(os.getpid()))
    live = [r for r in runs if r not in stale and (r.data.tags.get("host"), r.data.tags.get("pid")) != me]
    if refuse_live and live:
        other = live[0].data.tags
        raise PngnnError(f"run key {key} is being trained now by process {other.get('pid')} on "
                         f"{other.get('host')} (MLflow run {live[0].info.run_id})",
                         "wait for it to finish, or stop it; its result is the one this command would make")
    return [r.info.run_id for r in stale]


class Terminated(SystemExit):
    """SIGTERM as an exception: unwinds like an exit (code 128 + 15, the shell's convention),
    so the active run can be ended before the process goes."""


# The handler each signal replaces: only Python's defaults, so a signal someone else handles
# (a server, an ignored SIGINT in a background job) stays theirs.
_DEFAULT_HANDLERS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}

P = ParamSpec("P")
R = TypeVar("R")


class InterruptGuard:
    """SIGINT and SIGTERM as exceptions (KeyboardInterrupt, Terminated), held back while a
    tracking call writes: an exception inside a sqlite transaction can leave the store locked,
    and then not even the KILLED status could be written. A held signal is raised as soon as
    the call returns; training and evaluation are interrupted at once."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending: int | None = None

    def _handle(self, signum: int, frame: object) -> None:
        if self._depth:
            self._pending = signum
            return
        self._raise(signum)

    @staticmethod
    def _raise(signum: int) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(128 + signum)

    @contextmanager
    def held(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending is not None:
                signum, self._pending = self._pending, None
                self._raise(signum)

    def holding(self, fn: Callable[P, R]) -> Callable[P, R]:
        """``fn`` with signals held while it runs."""

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self.held():
                return fn(*args, **kwargs)

        return wrapper

    @contextmanager
    def ending_killed(self) -> Iterator[None]:
        """The active run ends KILLED on SIGINT or SIGTERM, then the interrupt goes on; without
        this MLflow ends it FAILED, and a plain SIGTERM leaves it RUNNING for good. Handlers can
        be set only in the main thread (a Prefect task's thread keeps the process's), so
        elsewhere only a KeyboardInterrupt is caught."""
        import mlflow

        main = threading.current_thread() is threading.main_thread()
        replaced = {s: signal.getsignal(s) for s, default in _DEFAULT_HANDLERS.items()
                    if main and signal.getsignal(s) is default}
        for signum in replaced:
            signal.signal(signum, self._handle)
        try:
            yield
        except (KeyboardInterrupt, Terminated) as exc:
            with self.held():
                mlflow.set_tag("ended_by", "SIGINT" if isinstance(exc, KeyboardInterrupt) else "SIGTERM")
                mlflow.end_run("KILLED")
            raise
        finally:
            for signum, handler in replaced.items():
                signal.signal(signum, handler)


def tracked_run(
    settings: Settings,
    split: SplitData,
    method: str,
    cfg: TrainConfig,
    profile: str = "custom",
    extra_params: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    log_model: bool = True,
    progress: bool = True,
    registered_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    checkpoint: Checkpointer | None = None,
) -> RunOutcome:
    """Train and evaluate one (method, split) as one MLflow run (a child run under a parent).

    The one tracked path: ``pngnn train --track``, the Prefect tasks of every flow and the
    tuned profiles' test runs all come here. ``registered_name``: also register the model (a
    new version of that name). A run on LLM edges records how many it trained on and their hash.
    The run is tagged with its run key (``pngnn.training.checkpoints.run_key``), process and host, so a
    later start of the same key closes it when it was killed without a word; ``checkpoint``:
    each one written also goes to the run's artifacts, and a resumed run says from which epoch."""
    import mlflow

    check_method_fits(method, split)  # before a run is opened
    cfg = for_dataset(cfg, split)  # the run logs the threshold it trains and scores with
    experiment_id = setup(settings, split.dataset)
    key = checkpoint.key if checkpoint is not None else run_key(split, method, cfg)
    close_stale_runs(experiment_id, key, refuse_live=True)
    edges = split.augmented_digest()
    process = {"run_key": key, "host": socket.gethostname(), "pid": str(os.getpid()),
               "torch_threads": str(torch_threads())}  # train_seconds compare only at equal threads
    if checkpoint is not None and checkpoint.restored is not None:
        process["resumed_from_epoch"] = str(checkpoint.restored["epoch"])
    guard = InterruptGuard()
    with outage_in_words(settings), \
            mlflow.start_run(run_name=f"{method}-seed{split.seed}", parent_run_id=parent_run_id, nested=True,
                             tags={**run_tags(split, method, profile, cfg), **process, **(tags or {})}) as run, \
            guard.ending_killed():
        with guard.held():
            mlflow.log_params(run_params(split, method, cfg, {**edges, **(extra_params or {})}))
            log_split_input(split)
        saving = None if checkpoint is None else replace(
            checkpoint, on_save=guard.holding(lambda path: log_file(run.info.run_id, path, "checkpoint")))
        with use_device(settings.device):
            result = train_method(method, split, cfg, on_epoch=guard.holding(epoch_logger()), progress=progress,
                                  checkpoint=saving)
            with guard.held():
                log_training(result, method, split, settings, log_model=log_model, registered_name=registered_name)
            per_user: dict[str, np.ndarray] = {}
            metrics, seconds = evaluate_step(result.model, split, cfg.threshold, per_user)
        with guard.held():
            log_evaluation(metrics, seconds, f"{method} {split.dataset} seed {split.seed}", cfg.to_dict())
    return RunOutcome(method, split.dataset, split.seed, metrics, result, cfg, seconds, run.info.run_id, edges,
                      split_record(split), per_user_frame(per_user))


class _MlflowTrialLog:
    def __init__(self) -> None:
        self._epoch = epoch_logger()

    def epoch(self, entry: EpochLog) -> None:
        self._epoch(entry)

    def metrics(self, values: Mapping[str, float]) -> None:
        import mlflow

        mlflow.log_metrics({metric_key(k): v for k, v in values.items()})


def trial_runs(parent_run_id: str, split: SplitData, method: str,
               extra_tags: Mapping[str, str] | None = None) -> Callable[[int, dict[str, Any]], Any]:
    """A context per Optuna trial: a child MLflow run under the study's parent with the trial's
    parameters, per-epoch validation metrics and final validation metrics. A pruned trial ends
    as a finished run tagged ``optuna_state=PRUNED``; a failed one as a failed run."""
    import mlflow

    @contextmanager
    def trial_run(number: int, params: dict[str, Any]) -> Iterator[_MlflowTrialLog]:
        import optuna

        tags = {"kind": "trial", "method": method, "split": str(split.seed), "dataset": split.dataset,
                "trial": str(number), "host": socket.gethostname(), "pid": str(os.getpid()),  # which worker
                **(extra_tags or {})}
        parent_key = mlflow.MlflowClient().get_run(parent_run_id).data.tags.get("run_key")
        if parent_key:  # a killed study's trial run is closed by the next start of the study
            tags["run_key"] = f"{parent_key}/child"
        mlflow.start_run(run_name=f"trial-{number}-{method}-seed{split.seed}", parent_run_id=parent_run_id,
                         nested=True, tags=tags)
        try:
            mlflow.log_params(params)
            log_split_input(split)
            yield _MlflowTrialLog()
        except optuna.TrialPruned:
            mlflow.set_tag("optuna_state", "PRUNED")  # a pruned trial did its job: it ends FINISHED
            mlflow.end_run("FINISHED")
            raise
        except BaseException:
            mlflow.set_tag("optuna_state", "FAIL")
            mlflow.end_run("FAILED")
            raise
        mlflow.set_tag("optuna_state", "COMPLETE")
        mlflow.end_run("FINISHED")

    return trial_run


def log_file(run_id: str, path: Path, artifact_dir: str) -> None:
    """A file into a given run's artifacts (the run need not be active in this thread)."""
    import mlflow

    mlflow.MlflowClient().log_artifact(run_id, str(path), artifact_dir)


def log_study(result: Any, prefix: str, run_id: str) -> None:
    """One split's study into run ``run_id`` (the parent): best value and parameters, every
    trial as JSON, the optimisation-history and parallel-coordinates plots. Through the client,
    so a Prefect task in another thread can log to its flow's parent run."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    import optuna
    from mlflow.entities import Metric, Param
    from optuna.visualization import matplotlib as optuna_plots

    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(f"{prefix}_best_valid_{metric_key(result.metric)}", result.best_value,
                                             now, 0)],
                     params=[Param(f"{prefix}_best_{k}", str(v)) for k, v in result.best_params.items()])
    client.log_dict(run_id, result.record(), f"tuning/{prefix}_study.json")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plots: dict[str, Callable[[Study], Axes]] = {"history": optuna_plots.plot_optimization_history}
        if len(result.best_params) > 1:
            plots["parallel_coordinate"] = optuna_plots.plot_parallel_coordinate
        for name, draw in plots.items():
            ax = draw(result.study)
            fig = cast("Figure", ax.figure)  # typed Figure | SubFigure; optuna draws on a whole figure
            fig.set_size_inches(8, 4.5)
            fig.tight_layout()
            path = Path(tmp) / f"{prefix}_{name}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            client.log_artifact(run_id, str(path), "plots")


def tracked_records(settings: Settings, dataset: str) -> dict[str, list[dict[str, Any]]]:
    """The tracking store's test results in the shape of the results JSON, grouped by
    ``<method> [<profile>]``: the newest finished run of each (method, profile, split), trials
    and parent runs left out. What ``pngnn report --from mlflow`` tabulates."""
    import mlflow

    store = settings.mlflow_uri.removeprefix("sqlite:///")
    if store != settings.mlflow_uri and not Path(store).is_file():
        return {}  # a report reads: it does not create an empty store
    client = mlflow.MlflowClient(tracking_uri=settings.mlflow_uri)
    experiment = client.get_experiment_by_name(experiment_name(dataset))
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=50000)
    out: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[str, str]] = set()
    for run in runs:
        tags = run.data.tags
        if tags.get("kind") in ("parent", "trial") or "method" not in tags or "split" not in tags:
            continue
        name = f"{tags['method']} [{tags.get('profile', 'custom')}]"
        metrics = {metric_name(k): v for k, v in run.data.metrics.items()
                   if k.startswith(("precision_at_", "recall_at_", "ndcg_at_"))}
        if not metrics or (name, tags["split"]) in seen:
            continue
        seen.add((name, tags["split"]))
        out.setdefault(name, []).append({"seed": int(tags["split"]), "metrics": metrics, "run_id": run.info.run_id})
    return {name: sorted(records, key=lambda r: r["seed"]) for name, records in sorted(out.items())}


def tracked_report(settings: Settings, dataset: str) -> str:
    """``pngnn report --from mlflow``: the tracking store's results table (``tracked_records``)."""
    from pngnn.evaluation.results import records_table
    from pngnn.evaluation.tables import to_markdown

    check_mlflow(settings.mlflow_uri)  # a dead server is one line, not a client traceback
    runs = tracked_records(settings, dataset)
    if not runs:
        raise PngnnError(f"no finished {dataset} runs in {settings.mlflow_uri}; run `pngnn run` or "
                         "`pngnn train --track` first, or set MLFLOW_TRACKING_URI")
    return to_markdown(records_table(runs, with_paper=False))
