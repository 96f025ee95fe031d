"""The candidate LightGCN's profile (issue 31 item 5: the paper pre-trains it with its own settings):
stored candidates carry the profile that ranked them, a run naming a profile ranks again what another
ranked, and the counts record it. A real DuckDB store and split; the LLM is the test server."""

from __future__ import annotations

import json
import re

import pytest
from fault_llm_server import FaultLLMServer, Script
from test_catalogue_augment import by_title, catalogue, llm
from test_user_data import COLUMNS, log_frame, settings, write

from pngnn.augment.step import augment_seeds, pretrain_step
from pngnn.core.config import Profile, TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.core.profiles import save_profile
from pngnn.data.prepare import ingest_user_data_step, split_step
from pngnn.data.store import Store

TINY = TrainConfig(epochs=1, n_neg=2, dim=8, layers=1, batch_size=4096)


@pytest.fixture
def shop(tmp_path, monkeypatch):
    """A shop's log with a catalogue, split seed 1, and a tuned profile 'tiny-ranker' saved where
    profiles are read."""
    conf = settings(tmp_path)
    ingest_user_data_step(conf, "shop", write(log_frame(n=3_000), tmp_path / "log.parquet"), COLUMNS,
                          catalogue(tmp_path), "id=sku,title=name", like_threshold=6)
    split_step(conf, "shop", 1)
    profiles = tmp_path / "profiles"
    save_profile(Profile("tiny-ranker", "shop", (1,), TINY.with_overrides(dim=12), method="lightgcn"), profiles,
                 {}, "quick")
    monkeypatch.setenv("PNGNN_PROFILES_DIR", str(profiles))
    return conf


def rankers(conf) -> set[str | None]:
    with Store(conf.db_path, read_only=True) as store:
        return set(store.query_sql("SELECT DISTINCT ranker FROM llm_candidates")["ranker"].to_list())


def test_a_named_profile_ranks_again_what_another_ranked_and_an_unnamed_run_reuses_any(shop):
    def pretrain(**kwargs):
        return pretrain_step(shop, "shop", 1, 12, users_by="random", progress=False, **kwargs)["trained"]

    assert pretrain(candidate_config=TINY) and rankers(shop) == {"custom"}
    assert not pretrain(candidate_config=TINY)
    assert pretrain(candidate_profile="tiny-ranker") and rankers(shop) == {"tiny-ranker"}
    assert not pretrain(candidate_profile="tiny-ranker")
    assert not pretrain()  # unnamed: whatever is stored
    with Store(shop.db_path) as store:
        store.run_sql("UPDATE llm_candidates SET ranker = NULL")  # stored before the label was kept
    assert not pretrain(candidate_profile="quick")  # those were the default's: quick
    assert pretrain(candidate_profile="tiny-ranker")


def test_augment_records_the_profile_and_prompts_show_its_candidates(shop, tmp_path):
    with FaultLLMServer(Script(responder=by_title)) as server:
        settings_ = llm(server, users=6).with_overrides(candidates_profile="tiny-ranker")
        [path] = augment_seeds(shop, "shop", [1], settings_, tmp_path / "results", echo=lambda _: None)
        shown = [r.body["messages"][-1]["content"] for r in server.chat_requests()]
    record = json.loads(path.read_text())
    assert record["candidates_profile"] == "tiny-ranker" and record["usable"] == 6
    assert path.parent.name.endswith("-tiny-ranker-ranker")  # filed beside, not over, a default run's record
    assert rankers(shop) == {"tiny-ranker"}
    with Store(shop.db_path, read_only=True) as store:
        stored = store.query_sql("SELECT c.user_id, i.title FROM llm_candidates c JOIN items i "
                                 "ON i.dataset = c.dataset AND i.item_id = c.item_id")
    per_user = stored.group_by("user_id").agg("title")["title"].to_list()
    # each prompt lists exactly one user's stored candidates
    for text in shown:
        listed = set(re.findall(r"^\d+\. (Thing \d+)", text.split("Candidate items")[1], flags=re.MULTILINE))
        assert any(listed == set(titles) for titles in per_user)


def test_an_unknown_candidate_profile_is_one_line_before_any_work(shop, tmp_path):
    with FaultLLMServer(Script(responder=by_title)) as server:
        with pytest.raises(PngnnError, match="unknown profile 'nope'") as info:
            augment_seeds(shop, "shop", [1], llm(server).with_overrides(candidates_profile="nope"),
                          tmp_path / "results", echo=lambda _: None)
        assert server.chat_requests() == []
    assert "\n" not in str(info.value) and rankers(shop) == set()
    assert not (tmp_path / "results").exists()
