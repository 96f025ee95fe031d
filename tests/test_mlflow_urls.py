"""Every MLflow address the project prints or documents opens the runs view (issue 33 item 1):
MLflow 3 opens a bare experiment address on its GenAI overview; ours carry the model-training
view. Checked the way a user meets them: a real tracking server, headless Chromium, the page's text."""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import pytest

from pngnn.core.settings import Settings
from pngnn.tracking.urls import MLFLOW_UI_DEFAULT, experiment_url, mlflow_run_url, server_base, where_to_open
from tests.servers import mlflow_server

ROOT = Path(__file__).resolve().parents[1]
RUN_NAME = "lightgcn-ml-100k-seed1-url-check"


def test_a_file_store_names_the_command_and_the_address_it_will_have(tmp_path):
    import mlflow

    settings = Settings(db_path=tmp_path / "x.duckdb", mlflow_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient(settings.mlflow_uri)
    experiment = client.create_experiment("pngnn-ml-100k")
    run = client.create_run(experiment)
    assert server_base(settings.mlflow_uri) is None and mlflow_run_url(settings, run.info.run_id) is None
    line = where_to_open(settings, run.info.run_id)
    assert f"`mlflow ui --backend-store-uri {settings.mlflow_uri}`" in line
    assert line.endswith(f"{MLFLOW_UI_DEFAULT}/#/experiments/{experiment}/runs/{run.info.run_id}"
                         "?workflowType=machine_learning")


def browser_class():
    spec = importlib.util.spec_from_file_location("shot", ROOT / "scripts" / "mlflow_compare_screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Browser


def live_members(group: int) -> list[int]:
    """The running processes of a process group (zombies left for the init process to reap do not count)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def page_text(browser, url: str, needle: str, timeout: float = 90) -> str:
    """The page's text once ``needle`` shows (the UI renders after its API calls return)."""
    browser.call("Page.navigate", url=url)
    deadline = time.monotonic() + timeout
    while True:
        text = browser.js("document.body ? document.body.innerText : ''") or ""
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(1)


@pytest.mark.slow
def test_every_printed_address_opens_the_runs_view_in_a_browser(tmp_path):
    import mlflow

    chromium = next((shutil.which(n) for n in ("chromium", "chromium-headless-shell") if shutil.which(n)), None)
    if chromium is None:
        pytest.skip("no Chromium here (apt-get install chromium-headless-shell)")
    from pngnn.tracking.runs import setup

    with mlflow_server(tmp_path) as server:
        settings = Settings(db_path=tmp_path / "x.duckdb", mlflow_uri=server)
        experiment = setup(settings, "ml-100k")  # as every command makes it: tags and all
        client = mlflow.MlflowClient(server)
        run = client.create_run(experiment, run_name=RUN_NAME)
        client.log_metric(run.info.run_id, "recall_at_20", 0.25)
        client.set_terminated(run.info.run_id)
        addresses = {"run (printed by train --track, run and the flows)": where_to_open(settings, run.info.run_id),
                     "experiment (docs)": experiment_url(server, experiment)}
        browser = browser_class()(chromium, 1280, 860)
        try:
            for what, url in addresses.items():
                text = page_text(browser, url, RUN_NAME)
                # the model-training view: its sidebar has the model registry; the GenAI overview's
                # has Observability and Judges, and no run names
                assert RUN_NAME in text and "Model registry" in text, (what, url, text[:600])
                assert "Observability" not in text and "Judges" not in text, (what, url, text[:600])
            bare = page_text(browser, f"{server}/#/experiments/{experiment}", "Observability")
            assert "Observability" in bare  # what MLflow does without the view: the reason for all this
        finally:
            browser.close()
        assert live_members(browser.proc.pid) == []  # the whole browser is gone, not only its wrapper script
