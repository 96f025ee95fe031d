"""Training checkpoints and run status: a killed training continues with the result it would
have had, and its MLflow run never stays RUNNING.

The in-process tests stop ``fit`` from its epoch callback after epoch k and resume from the
last checkpoint; the process tests start ``pngnn train --track`` for real, watch its
checkpoint file appear, and then kill it (SIGKILL, SIGINT, SIGTERM)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
import torch

from pngnn.core.config import PROFILES, TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.data.split import SplitData
from pngnn.evaluation.results import result_path
from pngnn.training import train as train_module
from pngnn.training.checkpoints import Checkpointer, checkpoint_path, run_identity
from pngnn.training.outcome import train_evaluate_step
from pngnn.training.train import EpochLog, TrainResult, train_lightgcn, train_pngnn
from tests.servers import BIN, QUIET_ENV
from tests.test_cli import assert_one_line_error, run_cli
from tests.test_early_stopping import tiny_split

SMALL = TrainConfig(epochs=5, dim=16, layers=2, batch_size=2048, n_neg=5, l2=1e-3)
TRAINERS = {"lightgcn": train_lightgcn, "pngnn": train_pngnn}


class Stop(Exception):
    """Stands in for a kill: raised from the epoch callback, after the epoch's log, before its checkpoint."""


def stop_after(epoch: int):
    def on_epoch(entry: EpochLog) -> None:
        if entry.epoch == epoch:
            raise Stop

    return on_epoch


def count_epochs(monkeypatch) -> list[int]:
    """Spy on ``train_epoch``: how many epochs a call really trained (restored ones are not trained)."""
    calls: list[int] = []
    original = train_module.train_epoch

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_epoch", counting)
    return calls


def interrupted_then_resumed(trainer, split: SplitData, method: str, cfg: TrainConfig, path: Path, every: int,
                             stop: int) -> tuple[TrainResult, Checkpointer]:
    identity = run_identity(split, method, cfg)
    with pytest.raises(Stop):
        trainer(split, cfg, on_epoch=stop_after(stop), progress=False,
                checkpoint=Checkpointer(path, identity, every=every))
    resumed = Checkpointer(path, identity, every=every, resume=True)
    return trainer(split, cfg, progress=False, checkpoint=resumed), resumed


@pytest.mark.parametrize("method", ["lightgcn", "pngnn"])
def test_a_resumed_fit_reproduces_the_uninterrupted_loss_curve(ml100k_split, tmp_path, monkeypatch, method):
    """PN-GNN's default reading also draws a disliked item per pair each epoch: a fourth random stream."""
    trainer = TRAINERS[method]
    whole = trainer(ml100k_split, SMALL, progress=False)
    trained = count_epochs(monkeypatch)
    result, checkpoint = interrupted_then_resumed(trainer, ml100k_split, method, SMALL, tmp_path / "run.ckpt",
                                                  every=2, stop=3)
    assert checkpoint.restored["epoch"] == 2
    assert len(trained) == 3 + 3  # epochs 1-3 before the stop, then only 3-5 again
    assert [e.epoch for e in result.history] == [1, 2, 3, 4, 5]
    assert [e.loss for e in result.history] == pytest.approx([e.loss for e in whole.history], rel=1e-6)
    assert [e.parts for e in result.history] == [pytest.approx(e.parts, rel=1e-6) for e in whole.history]
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(result.model.state_dict()[name], value)


def test_a_resumed_fit_keeps_the_early_stopping_watch(tmp_path, monkeypatch):
    """A scripted validation curve (best at epoch 2, then no gain): the run stopped after epoch 5
    and resumed from epoch 4's checkpoint still stops after epoch 5 and hands back epoch 2's weights."""
    scripted = iter([])

    def scripted_evaluate(scorer, n_items, rated, valid, threshold):  # test double: a scripted validation curve
        return {"recall@20": next(scripted)}

    monkeypatch.setattr(train_module, "evaluate", scripted_evaluate)
    curve = [0.10, 0.30, 0.20, 0.25, 0.05, 0.01, 0.02]
    split = tiny_split()
    cfg = TrainConfig(epochs=len(curve), dim=8, layers=1, batch_size=64, n_neg=2, lr=0.05, eval_every=1, patience=3)
    scripted = iter(curve)
    whole = train_lightgcn(split, cfg, progress=False)
    assert [e.epoch for e in whole.history] == [1, 2, 3, 4, 5] and whole.best_epoch == 2
    scripted = iter(curve[:5] + curve[4:])  # the interrupted run evaluates epochs 1-5, the resumed one 5 again
    result, checkpoint = interrupted_then_resumed(train_lightgcn, split, "lightgcn", cfg, tmp_path / "run.ckpt",
                                                  every=2, stop=5)
    assert checkpoint.restored["early_stopping"]["stale"] == 2
    assert [e.epoch for e in result.history] == [1, 2, 3, 4, 5] and result.best_epoch == 2
    assert [e.loss for e in result.history] == pytest.approx([e.loss for e in whole.history], rel=1e-6)
    torch.testing.assert_close(result.model.embedding.weight, whole.model.embedding.weight)


def test_a_checkpoint_of_another_run_is_refused_or_ignored(ml100k_split, tmp_path):
    path = tmp_path / "run.ckpt"
    with pytest.raises(Stop):
        train_lightgcn(ml100k_split, SMALL, on_epoch=stop_after(2), progress=False,
                       checkpoint=Checkpointer(path, run_identity(ml100k_split, "lightgcn", SMALL), every=1))
    other = SMALL.with_overrides(epochs=6, lr=0.01)
    with pytest.raises(PngnnError, match=r"other settings \(epochs, lr\).*--no-resume"):
        _ = Checkpointer(path, run_identity(ml100k_split, "lightgcn", other), resume=True).restored
    rewrite_commit(path, "abc1234")
    with pytest.raises(PngnnError, match="commit abc1234, not def5678"):
        _ = Checkpointer(path, run_identity(ml100k_split, "lightgcn", SMALL), resume=True, commit="def5678").restored
    assert Checkpointer(path, run_identity(ml100k_split, "lightgcn", other)).restored is None  # default: start over
    assert Checkpointer(path, run_identity(ml100k_split, "lightgcn", SMALL), resume=False).restored is None
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(PngnnError, match=r"cannot be read.*--no-resume"):
        _ = Checkpointer(path, run_identity(ml100k_split, "lightgcn", SMALL)).restored


def rewrite_commit(path: Path, commit: str) -> None:
    """The checkpoint as if written by the code of another commit."""
    torch.save({**torch.load(path, weights_only=True), "commit": commit}, path)


# --- real processes -------------------------------------------------------------------------------------------

EPOCHS = 6


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite store with its tables made once: creating them is most of a short run's start."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_db(empty_mlflow_db: Path, tmp_path: Path) -> Path:
    target = tmp_path / "mlflow.db"
    shutil.copyfile(empty_mlflow_db, target)
    return target


def train_args(results: Path, *extra: str) -> list[str]:
    return ["train", "--method", "lightgcn", "--dataset", "ml-100k", "--seed", "1", "--epochs", str(EPOCHS),
            "--results-dir", str(results), "--track", *extra]


def cli_env(tmp_path: Path, db: Path) -> dict[str, str]:
    env = {**os.environ, **QUIET_ENV, "PNGNN_DB": str(db), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("PREFECT_API_URL", None)
    return env


def start_then_signal(args: list[str], tmp_path: Path, db: Path, checkpoint: Path, signum: int
                      ) -> subprocess.CompletedProcess:
    """Start the command, wait for its first checkpoint, send ``signum``; the finished process."""
    proc = subprocess.Popen([str(BIN / "pngnn"), *args], env=cli_env(tmp_path, db), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def runs(tmp_path: Path) -> list[mlflow.entities.Run]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return sorted(client.search_runs(experiments), key=lambda r: r.info.start_time)


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_with_the_uninterrupted_result(tmp_path, mlflow_db, ml100k_db_copy, ml100k_split):
    results = tmp_path / "results"
    record = result_path(results, "ml-100k", "lightgcn", 1)
    args = train_args(results, "--checkpoint-every", "2")
    killed = start_then_signal(args, tmp_path, ml100k_db_copy, checkpoint_path(record), signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]  # killed mid-training, not finished
    assert not record.exists()
    epoch = torch.load(checkpoint_path(record), weights_only=True)["epoch"]
    assert 2 <= epoch < EPOCHS
    [stale] = runs(tmp_path)
    assert stale.info.status == "RUNNING"  # what kill -9 leaves: nothing could end it

    rerun = subprocess.run([str(BIN / "pngnn"), *args], env=cli_env(tmp_path, ml100k_db_copy), cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming after epoch {epoch}" in rerun.stderr
    assert not checkpoint_path(record).exists()  # done: the record holds the run now
    killed_run, resumed_run = runs(tmp_path)
    assert killed_run.info.run_id == stale.info.run_id and killed_run.info.status == "KILLED"
    assert resumed_run.info.status == "FINISHED"
    assert resumed_run.data.tags["resumed_from_epoch"] == str(epoch)
    assert resumed_run.data.tags["run_key"] == killed_run.data.tags["run_key"]

    cfg = PROFILES["quick"].train.with_overrides(epochs=EPOCHS)
    whole = train_evaluate_step(ml100k_split, "lightgcn", cfg, progress=False)
    got = json.loads(record.read_text())
    assert got["loss_curve"] == pytest.approx([e.loss for e in whole.train.history], abs=1e-6)
    assert got["metrics"] == pytest.approx(whole.metrics, rel=1e-6)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    curve = client.get_metric_history(resumed_run.info.run_id, "loss")
    assert sorted(m.step for m in curve) == list(range(1, EPOCHS + 1))  # the restored epochs are in the run too


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_an_interrupted_tracked_run_ends_killed(tmp_path, mlflow_db, ml100k_db_copy, signum, code):
    results = tmp_path / "results"
    record = result_path(results, "ml-100k", "lightgcn", 1)
    proc = start_then_signal(train_args(results, "--checkpoint-every", "1"), tmp_path, ml100k_db_copy,
                             checkpoint_path(record), signum)
    assert proc.returncode == code, proc.stderr[-2000:]
    [run] = runs(tmp_path)
    assert run.info.status == "KILLED"
    assert run.data.tags["ended_by"] == signal.Signals(signum).name
    assert checkpoint_path(record).exists() and not record.exists()  # the next start continues from it
    if signum == signal.SIGINT:
        assert proc.stderr.strip().splitlines()[-1].endswith(f"the same command continues from the checkpoint "
                                                             f"{checkpoint_path(record)}")


def start_mlflow(root: Path, port: int) -> subprocess.Popen:
    """A real MLflow tracking server on ``port`` over ``root``'s store, in its own process group."""
    from tests.servers import wait_http

    log = root / f"mlflow-{time.monotonic_ns()}.log"
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--serve-artifacts",
                             "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
                            env={**os.environ, **QUIET_ENV}, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/health", proc, 180, log)
    return proc


@pytest.mark.slow
def test_a_tracking_server_that_stops_ends_training_in_one_line_and_the_rerun_resumes(tmp_path, ml100k_db_copy,
                                                                                       ml100k_split):
    """The server killed during a tracked training: the command ends with exit 2 and one line in well
    under 90 s, its checkpoint kept; with the server back, the same command resumes to the metrics of
    an uninterrupted training."""
    from tests.servers import free_port

    port, store = free_port(), tmp_path / "tracking"
    store.mkdir()
    server = start_mlflow(store, port)
    results = tmp_path / "results"
    record = result_path(results, "ml-100k", "lightgcn", 1)
    env = {**cli_env(tmp_path, ml100k_db_copy), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
    args = [str(BIN / "pngnn"), *train_args(results, "--checkpoint-every", "1")]
    try:
        proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 180
        while not checkpoint_path(record).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        stopped = time.monotonic()
        _, err = proc.communicate(timeout=300)
        waited = time.monotonic() - stopped
        assert proc.returncode == 2, err[-3000:]
        assert waited < 90, f"the training ran {waited:.0f} s after its tracking server stopped"
        assert "Traceback" not in err, err[-3000:]
        assert err.strip().splitlines()[-1].startswith(
            f"error: the MLflow tracking server http://127.0.0.1:{port} stopped answering during the run; start it")
        assert checkpoint_path(record).exists() and not record.exists()
        server = start_mlflow(store, port)
        rerun = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "resuming after epoch" in rerun.stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
    whole = train_evaluate_step(ml100k_split, "lightgcn", PROFILES["quick"].train.with_overrides(epochs=EPOCHS),
                                progress=False)
    assert json.loads(record.read_text())["metrics"] == pytest.approx(whole.metrics, rel=1e-6)


def test_bad_checkpoint_options_fail_before_any_work(tmp_path):
    results = tmp_path / "results"
    missing = checkpoint_path(result_path(results, "ml-100k", "lightgcn", 1))
    assert_one_line_error(run_cli(train_args(results, "--resume"), tmp_path), "no checkpoint to resume at",
                          str(missing), "without --resume")
    assert_one_line_error(run_cli(train_args(results, "--checkpoint-every", "-1"), tmp_path),
                          "'--checkpoint-every': -1 is negative; use 0 or more")
    assert not (tmp_path / "db.duckdb").exists()


def test_resume_of_a_checkpoint_of_other_settings_is_one_line(tmp_path, ml100k_db_copy, ml100k_split):
    results = tmp_path / "results"
    path = checkpoint_path(result_path(results, "ml-100k", "lightgcn", 1))
    cfg = PROFILES["quick"].train.with_overrides(epochs=3)
    Checkpointer(path, run_identity(ml100k_split, "lightgcn", cfg)).save({"epoch": 1})
    proc = run_cli(train_args(results, "--resume"), tmp_path, PNGNN_DB=str(ml100k_db_copy))
    assert_one_line_error(proc, f"checkpoint {path} is of other settings (epochs)", "--no-resume")
    assert not (tmp_path / "mlflow.db").exists()  # refused before MLflow was touched


@pytest.mark.slow
def test_kill_9_during_tune_then_the_rerun_closes_the_killed_parent_and_trial_runs(tmp_path, mlflow_db,
                                                                                  ml100k_db_copy):
    args = [str(BIN / "pngnn"), "tune", "--method", "lightgcn", "--profile", "quick", "--seed", "1", "--trials", "2",
            "--epochs", "4", "--no-test", "--save-as", "killed-study"]
    env = {**cli_env(tmp_path, ml100k_db_copy), "PNGNN_PROFILES_DIR": str(tmp_path / "profiles")}
    proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")

    def trial_running() -> bool:
        experiments = [e.experiment_id for e in client.search_experiments()]
        return bool(experiments and client.search_runs(experiments, "tags.kind = 'trial'"))

    deadline = time.monotonic() + 240
    while not trial_running() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    killed = {r.data.tags["kind"]: r for r in runs(tmp_path)}
    assert {k: r.info.status for k, r in killed.items()} == {"parent": "RUNNING", "trial": "RUNNING"}

    rerun = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = {r.info.run_id: r for r in runs(tmp_path)}
    for run in killed.values():  # what kill -9 left RUNNING, closed by the next start of the study
        assert after[run.info.run_id].info.status == "KILLED"
        assert after[run.info.run_id].data.tags["ended_by"].startswith("gone")
    assert not [r for r in after.values() if r.info.status == "RUNNING"]


def test_a_run_key_held_by_a_live_process_is_refused_in_one_line(tmp_path, ml100k_split):
    from pngnn.core.settings import Settings
    from pngnn.tracking.runs import setup, tracked_run

    settings = Settings(mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    cfg = SMALL.with_overrides(epochs=1)
    experiment_id = setup(settings, "ml-100k")
    from pngnn.training.checkpoints import run_key

    other = subprocess.Popen(["sleep", "60"])  # the live process another start of the key would be
    try:
        with mlflow.start_run(experiment_id=experiment_id, tags={"run_key": run_key(ml100k_split, "lightgcn", cfg),
                                                                 "host": __import__("socket").gethostname(),
                                                                 "pid": str(other.pid)}):
            pass
        client = mlflow.MlflowClient(settings.mlflow_uri)
        [held] = client.search_runs([experiment_id])
        client.update_run(held.info.run_id, "RUNNING")
        with pytest.raises(PngnnError, match=rf"is being trained now by process {other.pid}") as info:
            tracked_run(settings, ml100k_split, "lightgcn", cfg, progress=False)
        assert "\n" not in str(info.value)
        other.kill()
        other.wait()
        tracked_run(settings, ml100k_split, "lightgcn", cfg, progress=False, log_model=False)  # gone: closed, trained
        assert client.get_run(held.info.run_id).info.status == "KILLED"
    finally:
        other.kill()
