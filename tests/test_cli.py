"""The command line's failures are one line naming the problem and the fix, exit code 2."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from flows.cli import app
from pngnn.core.config import DEFAULT_DATASET
from pngnn.core.constants import DEFAULT_METHODS
from pngnn.core.profiles import get_profile
from tests.servers import BIN, QUIET_ENV, free_port


def run_cli(args: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **QUIET_ENV, "PNGNN_DB": str(tmp_path / "db.duckdb"),
                "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", **env}
    full_env.pop("PREFECT_API_URL", None)
    full_env.update(env)
    return subprocess.run([str(BIN / "pngnn"), *args], env=full_env, capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_run_with_a_dead_prefect_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/api"
    proc = run_cli(["run", "--epochs", "1"], tmp_path, PREFECT_API_URL=url)
    assert_one_line_error(proc, url, "prefect server start")
    assert not (tmp_path / "db.duckdb").exists()  # nothing started, nothing written


def test_report_from_a_dead_mlflow_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_cli(["report", "--from", "mlflow", "--dataset", "ml-100k"], tmp_path, MLFLOW_TRACKING_URI=url)
    assert_one_line_error(proc, url, "mlflow server")


def test_run_with_a_dead_mlflow_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_cli(["run", "--epochs", "1"], tmp_path, MLFLOW_TRACKING_URI=url)
    assert_one_line_error(proc, url, "mlflow server")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["ingest", "ml-30m"], ["unknown dataset 'ml-30m'", "ml-100k", "ml-20m"]),
        (["train", "--method", "bpr-mf"], ["unknown method 'bpr-mf'"]),
        (["train", "--profile", "huge"], ["unknown profile 'huge'", "quick"]),
        (["train", "--dual-bpr", "other"], ["unknown Dual-BPR variant 'other'"]),
        (["train", "--dual-bpr", "weighted", "--b", "0"], ["weighs disliked items 1/b: b must be > 0"]),
        (["train", "--pair-sampling", "items"], ["unknown pair sampling 'items'", "edges, users"]),
        (["report", "--results-dir", "nowhere"], ["no results for ml-100k"]),
        (["train", "--method", "ease", "--ease-lambda", "0"], ["ease_lambda=0.0 must be > 0"]),
        (["tune", "--method", "bogus", "--profile", "quick"], ["unknown method 'bogus'"]),
        (["tune", "--method", "ease", "--profile", "quick", "--valid-fraction", "0"],
         ["--valid-fraction must lie in (0, 1)", "try 0.1"]),
        (["tune", "--method", "ease", "--profile", "quick", "--trials", "0"],
         ["'--trials': 0 is not a count", "1 or more"]),
        (["tune", "--method", "ease", "--profile", "quick", "--save-as", "paper"], ["profile 'paper' is built in"]),
        (["report", "--compare", "ease"], ["--compare takes METHOD:BASELINE"]),
        (["train", "--seed", "-1"], ["split seed -1 is out of range", "from 0 to 2147483647"]),
        (["split", "ml-100k", "--seed", str(2**40)], [f"split seed {2**40} is out of range"]),
        (["augment", "--seed", "-3"], ["split seed -3 is out of range"]),
        (["augment", "--max-failed-share", "1.5"], ["max_failed_share=1.5", "less than or equal to 1"]),
        (["tune", "--method", "ease", "--profile", "quick", "--seed", "-2"], ["split seed -2 is out of range"]),
        (["run", "--method", "bogus"], ["unknown method 'bogus'"]),
        (["run", "--seed", "-1"], ["split seed -1 is out of range"]),
        (["report", "--from", "files"], ["--from takes results or mlflow"]),
        (["report", "--plot", "seg.png"], ["--plot draws the segment table: add --segments"]),
        (["report", "--from", "mlflow", "--dataset", "ml-100k"], ["no finished ml-100k runs", "pngnn run"]),
        (["train", "--set", "dim=wide"], ["--set 'dim=wide': dim takes an integer", "dim=64"]),
        (["train", "--set", "width=3"], ["--set 'width=3': expected KEY=VALUE"]),
        (["tune", "--method", "ease", "--profile", "quick", "--set", "dim=128"], ["--set dim: not a setting ease"]),
        (["train", "--device", "tpu"], ["unknown device 'tpu'", "auto, cpu, cuda"]),
        (["train", "--aug-mode", "edges"], ["unknown augmentation mode 'edges'", "graph, triples"]),
        (["augment", "--users-by", "densest"], ["users_by", "sparsest", "random"]),
        (["whatif", "--p", "1.5"], ["every --p must lie in [0, 1]"]),
        (["whatif", "--users", "-4"], ["'--users': -4 is negative; use 0 or more"]),
        (["whatif", "--aug-mode", "edges"], ["unknown augmentation mode 'edges'"]),
    ],
)
def test_bad_arguments(tmp_path, args, needles):
    assert_one_line_error(run_cli(args, tmp_path), *needles)


@pytest.mark.parametrize(
    ("args", "env", "needles"),
    [
        (["augment", "--dataset", "ml-100k", "--seed", "1"], {"PNGNN_LLM_CONCURRENCY": "abc"},
         ["PNGNN_LLM_CONCURRENCY='abc'", "valid integer", "set PNGNN_LLM_CONCURRENCY to a valid value or unset it"]),
        (["augment", "--dataset", "ml-100k"], {"PNGNN_LLM_USERS": "-1"},
         ["PNGNN_LLM_USERS='-1'", "greater than or equal to 0"]),
        (["ingest", "ml-100k"], {"PNGNN_SERVE_LIMIT": "many"}, ["PNGNN_SERVE_LIMIT='many'", "unset it"]),
    ],
)
def test_a_bad_environment_variable_is_one_line_before_any_work(tmp_path, args, env, needles):
    assert_one_line_error(run_cli(args, tmp_path, **env), *needles)
    assert not (tmp_path / "db.duckdb").exists()


def test_a_duckdb_path_that_cannot_be_created_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    proc = run_cli(["ingest", "ml-100k"], tmp_path, PNGNN_DB=str(tmp_path / "a-file" / "db.duckdb"))
    assert_one_line_error(proc, "cannot create the folder of DuckDB file", "point PNGNN_DB at a writable place")


def test_ml20m_without_files_names_the_folder_and_the_offline_download(tmp_path):
    """ML-20M is a known dataset now: without its files, one line naming where they go."""
    empty = tmp_path / "empty"
    proc = run_cli(["ingest", "ml-20m", "--no-download"], tmp_path, PNGNN_DATA_DIR=str(empty))
    assert_one_line_error(proc, str(empty / "ml-20m" / "ratings.csv"), "is missing", "PNGNN_DATA_DIR",
                          "needs internet")
    assert not (tmp_path / "db.duckdb").exists()


@pytest.mark.parametrize("args", [["ingest", "ml-100k"], ["train", "--method", "mostpop"], ["augment"], ["run"]])
def test_missing_data_without_download(tmp_path, args):
    """--no-download: one line naming the missing file and PNGNN_DATA_DIR, before any work
    (run: before a Prefect server is started)."""
    empty = tmp_path / "empty"
    proc = run_cli([*args, "--no-download", *(["--results-dir", str(tmp_path / "r")] if args[0] in ("train", "augment")
                                              else [])], tmp_path, PNGNN_DATA_DIR=str(empty))
    assert_one_line_error(proc, str(empty / "ml-100k"), "is missing", "PNGNN_DATA_DIR")
    assert not (tmp_path / "db.duckdb").exists()


def test_every_argument_and_option_of_every_command_has_help():
    group = typer.main.get_command(app)
    commands = {"pngnn": group, **group.commands}
    assert {"ingest", "split", "train", "tune", "augment", "report", "recommend", "run"} <= set(commands)
    missing = [f"pngnn {name} {p.name}" for name, command in commands.items() for p in command.params
               if not (getattr(p, "help", None) or "").strip()]
    assert missing == []


def test_every_command_help_is_prose_that_rich_can_wrap():
    """Typer keeps a docstring's line breaks and rich wraps them again: each paragraph must be one line."""
    group = typer.main.get_command(app)
    ragged = {name: paragraph for name, command in group.commands.items()
              for paragraph in (command.help or "").split("\n\n") if "\n" in paragraph}
    assert ragged == {}
    assert "answers over the OpenAI-compatible API" in group.commands["whatif"].help


def test_one_default_dataset_and_the_real_default_methods():
    """Every --dataset (or DATASET argument) defaults to the one DEFAULT_DATASET, or to the
    profile's, and the profile train and run default to is on it; run --help names its methods."""
    commands = typer.main.get_command(app).commands
    defaults = {name: p.default for name, command in commands.items() for p in command.params if p.name == "dataset"}
    assert set(defaults) == {"ingest", "split", "train", "tune", "augment", "report", "recommend", "run", "whatif"}
    assert {name for name, default in defaults.items() if default is None} == {"train", "tune", "run"}
    assert set(defaults.values()) == {DEFAULT_DATASET, None}
    assert all({p.name: p.default for p in commands[name].params}["profile"] == "quick" for name in ("train", "run"))
    assert get_profile("quick").dataset == DEFAULT_DATASET
    method = next(p for p in commands["run"].params if p.name == "method")
    assert ", ".join(DEFAULT_METHODS) in method.help


def test_the_command_line_starts_without_torch():
    """`pngnn --help` and every command's parsing import no torch (seconds on a small machine)."""
    probe = "import sys, flows.cli; print(sorted(m for m in ('torch', 'mlflow', 'prefect') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_no_torch_warning_on_stderr(tmp_path, ml100k_db_copy):
    """torch's beta-state warning about CSR tensors is not printed by a command that trains a
    graph model, even with every warning turned on (PYTHONWARNINGS=always)."""
    for args in (["--help"], ["train", "--method", "pngnn", "--dataset", "ml-100k", "--seed", "1", "--epochs", "1",
                              "--results-dir", str(tmp_path / "results")]):
        proc = run_cli(args, tmp_path, PNGNN_DB=str(ml100k_db_copy), PYTHONWARNINGS="always")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "beta state" not in proc.stderr and "sparse" not in proc.stderr.lower(), proc.stderr[-2000:]


@pytest.mark.parametrize("given_by", ["flag", "environment"])
def test_augment_with_a_dead_llm_server_fails_before_training(tmp_path, ml100k_db_copy, given_by):
    import duckdb

    url = f"http://127.0.0.1:{free_port()}/v1"
    args = ["augment", "--dataset", "ml-100k", "--seed", "1", "--users", "2"]
    if given_by == "flag":
        proc = run_cli([*args, "--base-url", url], tmp_path, PNGNN_DB=str(ml100k_db_copy))
    else:
        proc = run_cli(args, tmp_path, PNGNN_DB=str(ml100k_db_copy), PNGNN_LLM_BASE_URL=url)
    assert_one_line_error(proc, url, "unreachable", "PNGNN_LLM_BASE_URL")
    con = duckdb.connect(str(ml100k_db_copy), read_only=True)
    tables = {t for (t,) in con.sql("SHOW TABLES").fetchall()}
    # No candidate LightGCN was trained and stored for a run that could not ask anything.
    assert "llm_candidates" not in tables or con.sql("SELECT count(*) FROM llm_candidates").fetchall()[0][0] == 0


def test_llm_method_without_augmented_edges_says_to_augment(tmp_path, ml100k_db_copy):
    proc = run_cli(["train", "--method", "llm-lightgcn", "--dataset", "ml-100k", "--seed", "1", "--epochs", "1",
                    "--results-dir", str(tmp_path / "results")], tmp_path, PNGNN_DB=str(ml100k_db_copy))
    assert_one_line_error(proc, "no LLM edges of model 'smollm2-135m-instruct'", "pngnn augment")
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_augment_then_train_on_llm_edges_from_the_command_line(tmp_path, ml100k_db_copy):
    """The two commands README gives for the LLM rows, against the real embedded SmolLM2 server."""
    pytest.importorskip("llama_cpp")
    env = {"PNGNN_DB": str(ml100k_db_copy)}
    proc = run_cli(["augment", "--dataset", "ml-100k", "--seed", "1", "--users", "2", "--results-dir",
                    str(tmp_path / "results")], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ml-100k seed 1:" in proc.stdout and "users 2" in proc.stdout and "sent 2" in proc.stdout
    written = tmp_path / "results" / "augmentation" / "ml-100k" / "smollm2-135m-instruct" / "seed1.json"
    record = json.loads(written.read_text())
    assert record["users"] == 2 and record["sent"] == 2 and record["positive_edges"] + record["dropped_rated"] >= 1
    again = run_cli(["augment", "--dataset", "ml-100k", "--seed", "1", "--users", "2", "--results-dir",
                     str(tmp_path / "results")], tmp_path, **env)
    assert again.returncode == 0 and "cached 2" in again.stdout and "sent 0" in again.stdout
    results = tmp_path / "results"
    proc = run_cli(["train", "--method", "llm-lightgcn", "--dataset", "ml-100k", "--seed", "1", "--epochs", "1",
                    "--results-dir", str(results)], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (results / "ml-100k" / "llm-lightgcn" / "seed1.json").exists()


def test_a_result_of_another_commit_or_other_settings_is_never_replaced_by_accident(tmp_path, ml100k_db_copy):
    """A quick run over a committed result is refused before any work; a rerun of the same
    command at the same commit replaces its own file; --force replaces anything."""
    results = tmp_path / "results"
    target = results / "ml-100k" / "mostpop" / "seed1.json"
    env = {"PNGNN_DB": str(ml100k_db_copy)}
    args = ["train", "--method", "mostpop", "--dataset", "ml-100k", "--seed", "1", "--results-dir", str(results)]
    assert run_cli(args, tmp_path, **env).returncode == 0
    first = json.loads(target.read_text())
    assert run_cli(args, tmp_path, **env).returncode == 0  # the same run again: replaced
    assert json.loads(target.read_text())["created"] >= first["created"]
    assert_one_line_error(run_cli([*args, "--epochs", "3"], tmp_path, **env), str(target), "other settings", "--force")
    committed = {**first, "commit": "0000000", "metrics": {"precision@5": 0.5}}
    target.write_text(json.dumps(committed))
    assert_one_line_error(run_cli(args, tmp_path, **env), "commit 0000000", "--force")
    assert json.loads(target.read_text()) == committed  # untouched
    assert run_cli([*args, "--force"], tmp_path, **env).returncode == 0
    assert json.loads(target.read_text())["commit"] != "0000000"
    # no temporary file left (the run's per-user metrics sit beside its record)
    assert sorted(p.name for p in target.parent.iterdir()) == ["seed1.json", "seed1.users.parquet"]


def by_prompt(body: dict) -> str:
    """A deterministic 'model' for the fault server: the answer depends on the prompt only,
    so two runs that ask the same prompts get the same edges."""
    digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).digest()
    like = digest[0] % 10 + 1
    return json.dumps({"like": like, "dislike": like % 10 + 1})


def store_candidates(db: Path, split, lightgcn, users: int) -> None:
    """The candidates of the users `pngnn augment --users N` samples, so it trains no LightGCN."""
    from pngnn.augment.candidates import candidates_frame, save_candidates, select_users
    from pngnn.data.store import Store

    with Store(db) as store:
        chosen = select_users(store, "ml-100k", sample=users)
        save_candidates(store, "ml-100k", 1, candidates_frame(store, split, lightgcn, chosen))


def augment_cli(db: Path, server, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli(["augment", "--dataset", "ml-100k", "--seed", "1", "--users", "12", "--base-url", server.base_url,
                    "--model", "fault-model", "--concurrency", "1", "--results-dir", str(tmp_path / "results"),
                    *extra], tmp_path, PNGNN_DB=str(db), PNGNN_LLM_SCHEMA_MODE="json_object")


def edge_set(db: Path) -> set[tuple]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return set(con.sql("SELECT user_id, item_id, kind FROM augmented_edges").fetchall())
    finally:
        con.close()


def asked(server, since: int = 0) -> list[str]:
    return sorted(json.dumps(r.body["messages"]) for r in server.chat_requests()[since:])


def test_failed_prompts_heal_on_the_next_runs(tmp_path, ml100k_db, ml100k_db_copy, ml100k_split, ml100k_lightgcn):
    """429s for every prompt: exit 2 in one line, nothing merged. Then a burst of 429s for 4
    prompts and one unusable answer: exit 0, and the summary says what training gets. A
    rerun against a healthy server asks exactly the 4, `--retry-failed` then the invalid
    one, and the edges equal those of a clean run."""
    from fault_llm_server import FaultLLMServer, Script, garbage, rate_limit

    store_candidates(ml100k_db_copy, ml100k_split, ml100k_lightgcn, 12)
    with FaultLLMServer(Script(responder=by_prompt)) as server:
        server.push(*[rate_limit(0)] * (5 * 12))  # 5 attempts per prompt, every one a 429
        proc = augment_cli(ml100k_db_copy, server, tmp_path)
    assert_one_line_error(proc, "12 of 12 LLM prompts of ml-100k split 1 have no usable answer", "12 transient",
                          "rerun")
    assert not (tmp_path / "results").exists() and edge_set(ml100k_db_copy) == set()

    with FaultLLMServer(Script(responder=by_prompt)) as server:
        server.push(*[rate_limit(0)] * (5 * 4), garbage("no idea"))
        proc = augment_cli(ml100k_db_copy, server, tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        requests = server.chat_requests()
        failed = sorted({json.dumps(r.body["messages"]) for r in requests[:20]})
        invalid = [json.dumps(requests[20].body["messages"])]
    assert len(failed) == 4 and len(requests) == 20 + 12 - 4
    said = re.search(r"training gets (\d+) LLM edges \((\d+) positive, (\d+) negative\) from 7 usable answers to "
                     r"12 prompts; no answer yet for 4 \(transient: a rerun asks them again\) and 1 \(permanent: "
                     r"--retry-failed asks them again\)", proc.stdout)
    assert said, proc.stdout
    assert int(said[1]) == int(said[2]) + int(said[3]) == len(edge_set(ml100k_db_copy)) > 0

    with FaultLLMServer(Script(responder=by_prompt)) as server:
        proc = augment_cli(ml100k_db_copy, server, tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert asked(server) == failed  # exactly the transient failures, not the invalid answer
        proc = augment_cli(ml100k_db_copy, server, tmp_path, "--retry-failed")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert asked(server, 4) == invalid
    assert "from 12 usable answers to 12 prompts" in proc.stdout and "no answer yet" not in proc.stdout

    clean = tmp_path / "clean.duckdb"
    shutil.copy(ml100k_db, clean)
    store_candidates(clean, ml100k_split, ml100k_lightgcn, 12)
    with FaultLLMServer(Script(responder=by_prompt)) as server:
        proc = augment_cli(clean, server, tmp_path / "clean")
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert edge_set(ml100k_db_copy) == edge_set(clean) != set()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error of a machine without a GPU")
def test_a_gpu_asked_for_on_a_machine_without_one_is_one_line_before_any_work(tmp_path):
    proc = run_cli(["train", "--device", "cuda", "--method", "mostpop"], tmp_path)
    assert_one_line_error(proc, "torch sees no CUDA GPU", "--device cpu")
    assert not (tmp_path / "db.duckdb").exists()  # nothing ingested: checked before any work


def test_whatif_baseline_only_writes_the_baseline_and_no_cells(tmp_path, ml100k_db):
    """The split spread of a one-split sweep comes from other splits' baselines: one command each."""
    shutil.copyfile(ml100k_db, tmp_path / "whatif-ml-100k.duckdb")  # the what-if's own file, already ingested
    out = tmp_path / "sweep" / "seed1.json"
    proc = run_cli(["whatif", "--dataset", "ml-100k", "--seed", "1", "--baseline-only", "--epochs", "1",
                    "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(baseline only)" in proc.stdout
    record = json.loads(out.read_text())
    assert record["cells"] == [] and 0 < record["baseline"]["recall@20"] < 1
    assert not out.with_suffix(".png").exists()  # nothing to draw without cells
