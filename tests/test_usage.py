"""The tokens a prompt costs, as the LLM's server reported them (``pngnn.augment.usage``), and the
what-if priced with them (``pngnn report --whatif --price-per-million``). The LLM is the
fault-injection server (a TEST DOUBLE of an OpenAI-compatible server), which reports 100 prompt
and 12 completion tokens an answer."""

from __future__ import annotations

import json
import shutil

import pytest
from fault_llm_server import FaultLLMServer, Script

from pngnn.augment.step import augment_step
from pngnn.augment.usage import token_usage
from pngnn.core.errors import PngnnError
from pngnn.core.settings import Settings
from pngnn.data.store import Store
from tests.dask_fanout import DATASET, MODEL, SEED, llm_settings, prepare_db, responder
from tests.test_cli import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def augmented_db(tmp_path_factory, data_dir):
    db = prepare_db(tmp_path_factory.mktemp("usage") / "pngnn.duckdb", data_dir, users=12)
    with FaultLLMServer(Script(responder=responder, models=(MODEL,))) as server:
        augment_step(Settings(db_path=db), DATASET, SEED, llm_settings(server.base_url, 12, 2), progress=False)
    return db


def test_usage_is_the_mean_the_server_reported_over_a_real_llms_answers(augmented_db, tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(augmented_db, db)
    with Store(db) as store:
        usage = token_usage(store, DATASET)
        assert (usage.prompts, usage.prompt_tokens, usage.completion_tokens, usage.models) == (12, 100.0, 12.0, MODEL)
        assert usage.per_prompt == 112.0
        # the what-if's simulated answerers report no usage, an unusable answer is not an answer
        keys = [r[0] for r in store.query_sql("SELECT key FROM llm_cache ORDER BY key").rows()]
        store.run_sql("UPDATE llm_cache SET model = 'oracle-p1.00-12' WHERE key = $key", key=keys[0])
        store.run_sql("UPDATE llm_cache SET status = 'invalid' WHERE key = $key", key=keys[1])
        store.run_sql("UPDATE llm_cache SET prompt_tokens = 300, completion_tokens = 20 WHERE key = $key", key=keys[2])
        left = token_usage(store, DATASET)
        assert (left.prompts, left.prompt_tokens, left.completion_tokens) == (10, 120.0, 12.8)  # (9 x 100 + 300) / 10
        with pytest.raises(PngnnError, match="no LLM answer to a ml-1m prompt") as info:
            token_usage(store, "ml-1m")
        assert "pngnn augment --dataset ml-1m" in info.value.fix and "\n" not in str(info.value)


def test_report_prices_the_whatif_at_the_measured_usage(augmented_db, tmp_path):
    sweep = {"seed": 1, "baseline": {"recall@20": 0.3, "users_sparsest10/recall@20": 0.2}, "cells": [
        {"p": 1.0, "users": 0, "like_precision": 0.4, "like_base_rate": 0.05, "prompts": 943,
         "lift": {"recall@20": 0.004, "users_sparsest10/recall@20": 0.001}}]}
    folder = tmp_path / "results" / "whatif" / DATASET / "sparsest-graph"
    folder.mkdir(parents=True)
    (folder / "seed1.json").write_text(json.dumps(sweep))
    args = ["report", "--dataset", DATASET, "--whatif", "--results-dir", str(tmp_path / "results")]
    proc = run_cli([*args, "--price-per-million", "2"], tmp_path, PNGNN_DB=str(augmented_db))
    assert proc.returncode == 0, proc.stderr
    assert "tokens a prompt: 112 (100 in, 12 out), the mean of 12 answers by fault-model" in proc.stdout
    # 943 prompts x 112 tokens x 2 USD a million = 0.21 USD; a lift of 0.004 is 4 x 0.001: 0.05 USD each
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| all"))
    assert "| 0.21 | 0.05 |" in row, proc.stdout
    stated = run_cli([*args, "--price-per-million", "2", "--tokens-per-prompt", "1000"], tmp_path,
                     PNGNN_DB=str(tmp_path / "none.duckdb"))
    assert stated.returncode == 0 and "| 1.89 |" in stated.stdout, stated.stderr  # 943 x 1,000 x 2 / 1e6
    missing = run_cli([*args, "--price-per-million", "2"], tmp_path, PNGNN_DB=str(tmp_path / "none.duckdb"))
    assert_one_line_error(missing, "no DuckDB file", "--tokens-per-prompt")
    no_whatif = [a for a in args if a != "--whatif"]
    assert_one_line_error(run_cli([*no_whatif, "--price-per-million", "2"], tmp_path), "add --whatif")
    assert_one_line_error(run_cli([*args, "--price-per-million", "-1"], tmp_path), "positive price")
