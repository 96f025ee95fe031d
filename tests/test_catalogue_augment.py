"""The LLM step on a user's own catalogue (issue 29 item 2): the prompt shows the catalogue's titles
and descriptions and states the dataset's own rating scale, the edges land on the liked and disliked
sides of the dataset's threshold, and `pngnn augment` then `pngnn train --method llm-pngnn` run on it.

The LLM is ``FaultLLMServer`` (the suite's TEST DOUBLE of an OpenAI-compatible server) answering
by title, so what the prompt says can be read back from the requests it received.
"""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
from fault_llm_server import FaultLLMServer, Script
from test_user_data import COLUMNS, log_frame, settings, write
from typer.testing import CliRunner

from pngnn.augment.merge import load_augmented
from pngnn.augment.step import augment_step
from pngnn.augment.wording import CATALOGUE_PROMPT_VERSION, DESCRIPTION_CHARS
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings
from pngnn.data.prepare import ingest_user_data_step, split_step
from pngnn.data.store import Store

LONG = "An extraordinarily detailed description " * 12


def catalogue(tmp_path, n: int = 95) -> str:
    """Titles 'Thing <i>' and descriptions; item 7's description is far longer than a prompt shows."""
    items = pl.DataFrame({"sku": [f"SKU{i:05d}" for i in range(n)], "name": [f"Thing {i}" for i in range(n)],
                          "description": [LONG if i == 7 else f"A thing,\n  number {i}" for i in range(n)]})
    return write(items, tmp_path / "catalog.parquet")


def by_title(body: dict) -> str:
    """Like = the candidate with the alphabetically first title, dislike = the last."""
    text = body["messages"][-1]["content"].split("Candidate items")[1]
    numbered = re.findall(r"^(\d+)\. (.+)$", text, flags=re.MULTILINE)
    ordered = sorted(numbered, key=lambda m: m[1])
    return json.dumps({"like": int(ordered[0][0]), "dislike": int(ordered[-1][0])})


def llm(server: FaultLLMServer, users: int = 12) -> LLMSettings:
    return LLMSettings(base_url=server.base_url, model="fault-model", schema_mode="json_object", users=users,
                       users_by="random", backoff_initial_s=0.01)


@pytest.fixture
def shop(tmp_path):
    """A shop's log with ratings 1-10 and a like threshold of 6, its catalogue, split seed 1."""
    conf = settings(tmp_path)
    ingest_user_data_step(conf, "shop", write(log_frame(n=3_000), tmp_path / "log.parquet"), COLUMNS,
                          catalogue(tmp_path), "id=sku,title=name,text=description", like_threshold=6)
    split_step(conf, "shop", 1)
    return conf


def test_the_prompt_shows_titles_and_descriptions_and_states_the_datasets_scale(shop):
    with FaultLLMServer(Script(responder=by_title)) as server:
        counts = augment_step(shop, "shop", 1, llm(server), progress=False)
        bodies = [r.body for r in server.chat_requests()]
    assert counts["prompt_version"] == CATALOGUE_PROMPT_VERSION and counts["usable"] == len(bodies) == 12
    system, user = (m["content"] for m in bodies[0]["messages"])
    assert "movie" not in system.lower() and "items" in system
    assert user.startswith("Here are items a user has rated from 1 to 10; a rating above 6 means they liked it:\n")
    history = re.findall(r"^- (.+); rated (\d+)$", user, flags=re.MULTILINE)
    assert len(history) == 10 and all(1 <= int(r) <= 10 for _, r in history)
    every = "\n".join(b["messages"][-1]["content"] for b in bodies)
    # whitespace collapsed; the long description cut at DESCRIPTION_CHARS and marked
    assert re.search(r"Thing \d+: A thing, number \d+", every) and "\n  number" not in every
    cut = re.findall(r"Thing 7: (.+?)(?:; rated \d+)?$", every, flags=re.MULTILINE)
    assert cut and all(c.endswith("…") and len(c) <= DESCRIPTION_CHARS + 1 for c in cut), cut
    # half liked, half disliked by the dataset's threshold (6), not MovieLens' 3.5
    with Store(shop.db_path, read_only=True) as store:
        train = store.query_sql("SELECT user_id, count(*) FILTER (WHERE rating > 6) AS liked, "
                                "count(*) FILTER (WHERE rating <= 6) AS disliked FROM splits WHERE dataset = 'shop' "
                                "AND seed = 1 AND part = 'train' GROUP BY user_id")
    assert train.filter((pl.col("liked") >= 5) & (pl.col("disliked") >= 5)).height > 0
    balanced = [sum(int(r) > 6 for _, r in re.findall(r"^- (.+); rated (\d+)$", b["messages"][-1]["content"],
                                                      flags=re.MULTILINE)) for b in bodies]
    assert balanced.count(5) >= len(bodies) - 2, balanced


def test_llm_edges_fall_on_either_side_of_the_datasets_own_threshold(shop):
    with FaultLLMServer(Script(responder=by_title)) as server:
        counts = augment_step(shop, "shop", 1, llm(server), progress=False)
    assert counts["positive_edges"] > 0 and counts["negative_edges"] > 0
    with Store(shop.db_path, read_only=True) as store:
        positive, negative = load_augmented(store, "shop", 1, "fault-model", CATALOGUE_PROMPT_VERSION)
        low, high = store.query_sql("SELECT min(rating), max(rating) FROM ratings WHERE dataset = 'shop'").row(0)
    # the highest and lowest ratings of the shop's scale: liked and disliked at its threshold of 6
    assert set(np.unique(positive.ratings)) == {high} and high > 6
    assert set(np.unique(negative.ratings)) == {low} and low <= 6
    assert 0.0 <= counts["like_base_rate"] <= 1.0  # the edges' precision, measured at threshold 6


def test_implicit_data_is_asked_what_a_user_chose_without_ratings(tmp_path):
    conf = settings(tmp_path)
    ingest_user_data_step(conf, "clicks", write(log_frame(n=3_000), tmp_path / "log.parquet"),
                          "user=customer,item=sku,time=when", catalogue(tmp_path), "id=sku,title=name")
    split_step(conf, "clicks", 1)
    with FaultLLMServer(Script(responder=by_title)) as server:
        counts = augment_step(conf, "clicks", 1, llm(server, users=3), progress=False)
        user = server.chat_requests()[0].body["messages"][-1]["content"]
    assert user.startswith("Here are items a user has chosen before:\n- Thing ") and "rated" not in user
    assert "Candidate items the user has not chosen yet:" in user and counts["positive_edges"] > 0


def test_a_dataset_without_titles_is_refused_in_one_line_before_any_training(tmp_path):
    from pngnn.augment.step import pretrain_step

    conf = settings(tmp_path)
    ingest_user_data_step(conf, "shop", write(log_frame(), tmp_path / "log.parquet"), COLUMNS, like_threshold=6)
    split_step(conf, "shop", 1)
    for step in (pretrain_step, augment_step):
        with pytest.raises(PngnnError, match=r"none of shop's \d+ rated items has one") as info:
            step(conf, "shop", 1)
        assert "\n" not in str(info.value) and "--items CATALOGUE --item-columns" in str(info.value)
    with Store(conf.db_path, read_only=True) as store:
        assert store.scalar("SELECT count(*) FROM llm_candidates") == 0  # refused before the candidate model


def test_augment_then_train_llm_pngnn_on_a_catalogue_from_the_command_line(tmp_path, monkeypatch):
    from flows.cli import app

    db = tmp_path / "pngnn.duckdb"
    monkeypatch.setenv("PNGNN_DB", str(db))
    monkeypatch.setenv("PNGNN_LLM_SCHEMA_MODE", "json_object")
    runner = CliRunner()
    out = runner.invoke(app, ["ingest", "--name", "shop", "--ratings", write(log_frame(n=3_000), tmp_path / "l.csv"),
                              "--columns", COLUMNS, "--like-threshold", "6", "--items", catalogue(tmp_path),
                              "--item-columns", "id=sku,title=name,text=description"])
    assert out.exit_code == 0, out.output
    with FaultLLMServer(Script(responder=by_title)) as server:
        out = runner.invoke(app, ["augment", "--dataset", "shop", "--seed", "1", "--users", "10", "--base-url",
                                  server.base_url, "--model", "fault-model", "--results-dir", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    said = re.search(r"shop seed 1: training gets (\d+) LLM edges", out.output)
    assert said and int(said[1]) > 0, out.output
    out = runner.invoke(app, ["train", "--dataset", "shop", "--method", "llm-pngnn", "--seed", "1", "--llm-model",
                              "fault-model", "--set", "epochs=2", "--results-dir", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    record = json.loads((tmp_path / "r" / "shop" / "llm-pngnn" / "seed1.json").read_text())
    assert record["llm_edges"] == int(said[1]) and record["config"]["threshold"] == 6.0
    for linear in ("llm-pn-ease", "llm-weighted-ease"):  # every llm- method loads the same edges from the store
        out = runner.invoke(app, ["train", "--dataset", "shop", "--method", linear, "--seed", "1", "--llm-model",
                                  "fault-model", "--results-dir", str(tmp_path / "r")])
        assert out.exit_code == 0, out.output
        assert json.loads((tmp_path / "r" / "shop" / linear / "seed1.json").read_text())["llm_edges"] == int(said[1])
