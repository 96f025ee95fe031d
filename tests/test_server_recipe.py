"""The documented Prefect server recipe gives a working UI (issue 15 item 5c).

``prefect server start --port N`` alone listens on N while its UI sends the browser to the API
on PREFECT_SERVER_API_PORT (4200 by default): a blank UI on any other port. Every recipe in the
docs sets both; the tracking guide's one, run as written on a free port, serves a UI that points at it.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import httpx
import pytest

from tests.servers import BIN, free_port, running

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "docs" / "tracking.md", ROOT / "docs" / "orchestration.md"]
RECIPE = re.compile(r"^(?P<cmd>.*\bprefect server start\b[^#]*)", re.MULTILINE)


def recipes(path: Path) -> list[str]:
    return [m.group("cmd").strip() for m in RECIPE.finditer(path.read_text())]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_documented_server_start_sets_the_api_port_with_the_port(path):
    found = recipes(path)
    assert found, f"no `prefect server start` in {path.name}"
    for cmd in found:
        port = re.search(r"--port[ =](\d+)", cmd)
        assert port, cmd
        assert f"PREFECT_SERVER_API_PORT={port.group(1)}" in cmd, cmd


@pytest.mark.slow
def test_the_first_documented_recipe_serves_a_ui_that_finds_its_api(tmp_path):
    cmd = recipes(DOCS[0])[0]
    port = str(free_port())
    assignments, _, command = cmd.partition(" prefect ")
    env = dict(a.split("=", 1) for a in shlex.split(assignments))
    env = {k: v.replace("4200", port) for k, v in env.items()}
    args = [str(BIN / "prefect"), *shlex.split(command.replace("4200", port))]
    env.update(PREFECT_HOME=str(tmp_path), PREFECT_SERVER_API_HOST="127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    with running(args, f"{base}/api/health", env, tmp_path / "server.log",
                 unset=("PREFECT_API_URL", "PREFECT_UI_API_URL")):
        settings = httpx.get(f"{base}/ui-settings", timeout=30).json()
    assert settings["api_url"] == f"{base}/api", settings
    assert "PREFECT_API_URL" not in env and os.environ.get("PREFECT_UI_API_URL") is None
