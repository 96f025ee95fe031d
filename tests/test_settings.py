"""Settings come from the environment, under the PNGNN_ prefix (and the few established names),
keywords win over it, a bad value is one line naming the variable and the fix, and docs/settings.md's
table documents every variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings, Settings, environment_names, llm_settings

SETTINGS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Only what a test sets: a developer's own PNGNN_* variables must not change the outcome."""
    for name in environment_names():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_environment_variables_reach_the_settings(clean_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = clean_environment
    env.setenv("PNGNN_DB", str(tmp_path / "x.duckdb"))
    env.setenv("PNGNN_DATA_DIR", "~/movielens")
    env.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    env.setenv("PNGNN_SERVE_LIMIT", "3")
    env.setenv("PNGNN_LLM_BASE_URL", "http://127.0.0.1:11434/v1")
    env.setenv("PNGNN_LLM_MODEL", "llama3.2")
    env.setenv("PNGNN_LLM_CONCURRENCY", "8")
    env.setenv("PNGNN_LLM_TIMEOUT", "2.5")
    s, llm = Settings(), LLMSettings()
    assert (s.db_path, s.mlflow_uri, s.serve_limit) == (tmp_path / "x.duckdb", "http://mlflow:5000", 3)
    assert s.data_dir == Path.home() / "movielens"  # ~ expanded
    assert s.studies_dir == tmp_path / "studies"
    assert (llm.base_url, llm.model, llm.concurrency, llm.timeout) == ("http://127.0.0.1:11434/v1", "llama3.2", 8, 2.5)


def test_only_prefixed_names_are_read(clean_environment: pytest.MonkeyPatch) -> None:
    env = clean_environment
    for name, value in {"DB_PATH": "/elsewhere.duckdb", "MODEL": "x", "CONCURRENCY": "9", "USERS": "1",
                        "PNGNN_MODEL": "y", "PNGNN_CONCURRENCY": "9", "PNGNN_DB_PATH": "/elsewhere.duckdb",
                        "API_KEY": "sk-unprefixed"}.items():
        env.setenv(name, value)
    assert Settings().model_fields_set == set()  # nothing above reached Settings
    assert LLMSettings().model_fields_set == set()  # nor the LLM's
    env.setenv("PNGNN_LLM_MODEL", "y")
    assert LLMSettings().model_fields_set == {"model"}


def test_keywords_win_over_the_environment_and_empty_means_unset(clean_environment: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    env = clean_environment
    env.setenv("PNGNN_DB", str(tmp_path / "env.duckdb"))
    env.setenv("PNGNN_LLM_BASE_URL", "")
    assert Settings(db_path=tmp_path / "kw.duckdb").db_path == tmp_path / "kw.duckdb"
    assert LLMSettings().base_url is None  # the embedded server, as when unset


def test_a_command_default_applies_only_when_neither_flag_nor_environment_says(
        clean_environment: pytest.MonkeyPatch) -> None:
    env = clean_environment
    assert llm_settings({"users": 20}).users == 20
    env.setenv("PNGNN_LLM_USERS", "7")
    assert llm_settings({"users": 20}).users == 7
    assert llm_settings({"users": 20}, users=3, model=None).users == 3  # a flag; None: a flag not given
    assert llm_settings({"users": 20}, users=0).users is None  # 0: every user


def test_flow_parameters_are_completed_from_the_environment(clean_environment: pytest.MonkeyPatch) -> None:
    """A deployment's ``llm`` parameter is a dict Prefect validates in the worker: the worker's
    environment fills what the dict leaves out."""
    from flows.pipeline import pipeline

    clean_environment.setenv("PNGNN_LLM_MODEL", "served-model")
    llm = pipeline.validate_parameters({"llm": {"users": 3}})["llm"]
    assert isinstance(llm, LLMSettings) and (llm.users, llm.model) == (3, "served-model")
    assert LLMSettings.model_validate(llm) is llm


def test_the_api_key_is_read_but_never_shown(clean_environment: pytest.MonkeyPatch) -> None:
    from flows.pipeline import pipeline

    clean_environment.setenv("OPENAI_API_KEY", "sk-SECRET-1")
    s = LLMSettings(base_url="https://api.example.com/v1")
    assert s.resolved_api_key() == "sk-SECRET-1"
    assert "SECRET" not in repr(s) + s.model_dump_json() + str(s.public())
    schema = pipeline.parameters.model_dump()["definitions"]["LLMSettings"]
    assert "model" in schema["properties"] and "api_key" not in schema["properties"]  # a deployment cannot hold it
    clean_environment.setenv("PNGNN_LLM_API_KEY", "sk-SECRET-2")
    assert LLMSettings().resolved_api_key() == "sk-SECRET-2"  # ours first


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        ({"PNGNN_LLM_CONCURRENCY": "abc"}, ["PNGNN_LLM_CONCURRENCY='abc'", "valid integer", "unset it"]),
        ({"PNGNN_LLM_USERS": "-5"}, ["PNGNN_LLM_USERS='-5'", "greater than or equal to 0"]),
        ({"PNGNN_LLM_SCHEMA_MODE": "xml"}, ["PNGNN_LLM_SCHEMA_MODE='xml'", "'json_schema'", "'none'"]),
        ({"PNGNN_LLM_BASE_URL": "localhost:8000"}, ["not an http(s) URL", "e.g. http://127.0.0.1:8000/v1"]),
        ({"PNGNN_SERVE_LIMIT": "0"}, ["PNGNN_SERVE_LIMIT='0'", "greater than or equal to 1"]),
        ({"PNGNN_TIMEZONE": "Mars/Base"}, ["unknown time zone 'Mars/Base'", "e.g. UTC"]),
    ],
)
def test_a_bad_variable_is_one_line_naming_it_and_the_fix(clean_environment: pytest.MonkeyPatch,
                                                          env: dict[str, str], needles: list[str]) -> None:
    for name, value in env.items():
        clean_environment.setenv(name, value)
    with pytest.raises(PngnnError) as err:
        Settings()
        LLMSettings()
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_a_bad_keyword_names_the_setting() -> None:
    with pytest.raises(PngnnError, match=r"^LLM setting concurrency=0: input should be greater than") as err:
        LLMSettings(concurrency=0)
    assert "\n" not in str(err.value)
    with pytest.raises(PngnnError, match=r"unknown LLM setting 'modle'; valid names are \[.*'model'"):
        LLMSettings(modle="x")
    with pytest.raises(PngnnError, match="unknown LLM setting 'timeout_s'"):
        LLMSettings(base_url="http://127.0.0.1:8000/v1").with_overrides(timeout_s=1)


def test_the_docs_document_every_variable() -> None:
    """One table in docs/settings.md lists every variable the settings read (and nothing they do not)."""
    section = SETTINGS_PAGE.read_text()
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", section, flags=re.M))
    assert documented == set(environment_names())


def test_set_values_and_flags_merge_and_a_disagreement_is_an_error():
    """`pngnn train --set epochs=2` trained the profile's epochs when no --epochs flag was given: the
    flag's None replaced the --set value (issue 32). A flag left out takes nothing away now."""
    from pngnn.core.config import merge_overrides, parse_overrides

    set_values = parse_overrides(["epochs=2", "b=2", "dual_bpr=siren"])
    flags = {"epochs": None, "b": None, "dual_bpr": None, "attention": False}
    assert merge_overrides(set_values, flags) == {"epochs": 2, "b": 2.0, "dual_bpr": "siren", "attention": False}
    assert merge_overrides(set_values, {"epochs": 2}) == {"epochs": 2, "b": 2.0, "dual_bpr": "siren"}
    with pytest.raises(PngnnError, match=r"--epochs 5 and --set epochs=2 disagree; give the setting once"):
        merge_overrides(set_values, {"epochs": 5})


def test_train_honours_set_for_a_setting_that_also_has_a_flag(tmp_path, monkeypatch, ml100k_db_copy, data_dir):
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("PNGNN_DB", str(ml100k_db_copy))
    monkeypatch.setenv("PNGNN_DATA_DIR", str(data_dir))
    out = CliRunner().invoke(app, ["train", "--method", "ease", "--set", "ease_lambda=123", "--results-dir",
                                   str(tmp_path)])
    assert out.exit_code == 0, out.output
    record = json.loads((tmp_path / "ml-100k" / "ease" / "seed1.json").read_text())
    assert record["config"]["ease_lambda"] == 123.0


@pytest.mark.parametrize(("overrides", "needle"), [
    (["lr=nan"], "training setting lr=nan must be a finite number"),
    (["l2=inf"], "training setting l2=inf must be a finite number"),
    (["seed=-1"], "training setting seed=-1 is out of range; use a seed from 0 to 4294967295"),
])
def test_non_finite_and_out_of_range_settings_are_one_line_before_any_work(tmp_path, monkeypatch, overrides,
                                                                           needle):
    """`--set lr=nan` trained with a NaN step, `--set seed=-1` died in numpy (issue 32)."""
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("PNGNN_DB", str(tmp_path / "db.duckdb"))
    args = ["train", "--method", "lightgcn"] + [a for o in overrides for a in ("--set", o)]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2 and needle in out.output
    assert out.output.strip().count("\n") == 0
    assert not (tmp_path / "db.duckdb").exists()  # refused before the store was created
