"""Generated values for every option of every command (issue 32 item 6): whatever the input, a
command ends with exit 0 or exit 2 and one line, never a traceback.

Hypothesis draws, per command, one option (or its argument) and a value for it (integers far outside any range,
NaN, infinities, text of any Unicode, empty strings, long strings). The environment makes any real
work end at once in an error of its own (the DuckDB file, the MLflow store and the data folder sit
under a regular file, the Prefect API is a closed port), so every example is fast and what is
tested is how a command meets its input: checked first, in one line. The suite runs a fixed set
of 25 examples a command (``derandomize``: CI is never red by chance); ``PNGNN_FUZZ_EXAMPLES=250``
draws that many fresh ones (run before a release; 250 a command found nothing on this commit).
"""

from __future__ import annotations

import os

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flows.cli import app

COMMAND = typer.main.get_command(app)
# each command's options that take a value (flags take none) as "--name", and "" for its argument
OPTIONS = {name: [p.opts[0] if p.opts[0].startswith("--") else "" for p in cmd.params
                  if p.opts and not getattr(p, "is_flag", False)]
           for name, cmd in COMMAND.commands.items()}

VALUES = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e400", "", " ", "..", "../x", "a" * 400, "ml-100k",
                     "quick", "paper", "ease", "pngnn", "lr=nan", "seed=-1", "dim=0", "user=a", "cuda:7"]),
    st.text(min_size=0, max_size=60).filter(lambda s: "\x00" not in s),
)


@pytest.fixture(scope="module")
def hostile_env(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzz")
    blocker = root / "a-file"
    blocker.write_text("not a folder")
    return {"PNGNN_DB": str(blocker / "pngnn.duckdb"), "MLFLOW_TRACKING_URI": f"sqlite:///{blocker / 'mlflow.db'}",
            "PNGNN_DATA_DIR": str(blocker / "data"), "PNGNN_PROFILES_DIR": str(root / "profiles"),
            "PREFECT_API_URL": "http://127.0.0.1:9/api", "PNGNN_LLM_BASE_URL": "http://127.0.0.1:9/v1"}


@pytest.mark.parametrize("command", sorted(name for name, options in OPTIONS.items() if options))
def test_any_value_of_any_option_ends_in_exit_0_or_one_line(command, hostile_env, tmp_path_factory):
    options = OPTIONS[command]
    workdir = tmp_path_factory.mktemp(f"fuzz-{command}")

    @settings(max_examples=int(os.environ.get("PNGNN_FUZZ_EXAMPLES", "25")), deadline=None, database=None,
              derandomize=os.environ.get("PNGNN_FUZZ_EXAMPLES") is None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(name=st.sampled_from(options), value=VALUES)
    def run(name: str, value: str) -> None:
        old = os.getcwd()
        os.chdir(workdir)
        try:
            out = CliRunner().invoke(app, [command, *([name] if name else []), value], env=hostile_env)
        finally:
            os.chdir(old)
        assert out.exit_code in (0, 2), (command, name, value, out.output[-2000:], out.exception)
        if out.exit_code == 2:
            lines = out.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), (command, name, value, out.output[-2000:])
        assert "Traceback" not in out.output

    run()
