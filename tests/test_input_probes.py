"""Every input checked (issue 32 item 1): the operator's probes, each one line and exit 2 before any
file, store or server is made: profiles that parse but are not profiles, a profile named by a path,
seeds out of range, a name too long for a file, epochs 0 before Prefect starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flows.cli import app

PROFILES = {"nonutf": b"\xff\xfe{}", "list": b"[]", "missing": b'{"format": 1}',
            "types": b'{"format": 1, "name": "x", "dataset": "ml-100k", "seeds": "abc", "train": {}, '
                     b'"test_fraction": 0.2, "valid_fraction": 0, "method": "ease"}',
            "badjson": b'{"format": 1,'}


@pytest.mark.parametrize(("args", "said"), [
    (["train", "--profile", "nonutf"], "nonutf.json is not UTF-8 text"),
    (["train", "--profile", "list"], "list.json is not a profile: it holds a JSON list, not an object"),
    (["train", "--profile", "missing"], "missing.json is not a profile: name: Field required (6 problem(s))"),
    (["train", "--profile", "types"], "types.json is not a profile: seeds: Input should be a valid list"),
    (["train", "--profile", "badjson"], "badjson.json is not JSON"),
    (["train", "--profile", "../outside/evil"], "--profile '../outside/evil' is not a profile name"),
    (["whatif", "--seed", "-1"], "split seed -1 is out of range"),
    (["whatif", "--seed", "100000000000000000000"], "split seed 100000000000000000000 is out of range"),
    (["augment", "--sample-seed", "-1"], "'--sample-seed': seed -1 is out of range"),
    (["tune", "--method", "ease", "--profile", "quick", "--sampler-seed", "4294967296"],
     "'--sampler-seed': seed 4294967296 is out of range"),
    (["tune", "--method", "ease", "--profile", "quick", "--trials", "0"], "'--trials': 0 is not a count"),
    (["tune", "--method", "ease", "--profile", "quick", "--timeout", "nan"], "'--timeout': nan is not a finite"),
    (["train", "--seed", "1.5"], "'--seed': '1.5' is not a whole number"),
    (["split", "--test-fraction", "1.5"], "'--test-fraction': 1.5 is not a share"),
    (["whatif", "--p", "nan"], "'--p': nan is not a finite number"),
    (["recommend", "--user", "1", "--k", "0"], "'--k': 0 is not a count"),
    (["tune", "--method", "ease", "--profile", "quick", "--save-as", "a" * 300], "(300 characters)' is too long"),
    (["run", "--epochs", "0"], "'--epochs': 0 is not a count; use 1 or more"),
])
def test_a_bad_input_is_one_line_before_anything_is_made(tmp_path, monkeypatch, args, said):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for name, body in PROFILES.items():
        (profiles / f"{name}.json").write_bytes(body)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "evil.json").write_text("{}")
    made = tmp_path / "made"
    monkeypatch.setenv("PNGNN_DB", str(made / "pngnn.duckdb"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{made / 'mlflow.db'}")
    monkeypatch.setenv("PNGNN_PROFILES_DIR", str(profiles))
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 2, out.output
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and lines[0].startswith("error: "), out.output
    assert not made.exists() and not (tmp_path / "results").exists()
