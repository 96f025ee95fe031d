"""Scoring by log-probabilities: the like distribution read from hand-made chat-completion
logprobs (one-token numbers, "10" as one token and as "1" + "0"), the position debias on a
hand-made case, and a server that sends no logprobs."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import polars as pl
import pytest
from fault_llm_server import FaultLLMServer, Script, answer

from pngnn.augment.cache import CacheEntry, LLMCache, canonical_json
from pngnn.augment.client import LLMClient, Request
from pngnn.augment.logprobs import (
    debiased_likes,
    like_scores,
    parse_scores,
    raw_likes,
    score_matrix,
    scores_from_response,
)
from pngnn.augment.merge import merge_augmented
from pngnn.augment.prompts import PROMPT_VERSION, messages
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings
from pngnn.data.store import Store


def tok(token: str, top: dict[str, float] | None = None) -> dict[str, object]:
    """One generated token in the OpenAI logprobs layout; ``top`` its alternatives (log-probs)."""
    top = top if top is not None else {token: 0.0}
    return {"token": token, "logprob": top.get(token, 0.0),
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top.items()]}


def probs(scores: list[float]) -> np.ndarray:
    return np.exp(np.asarray(scores))


# SmolLM2's path for '{"like": 3, "dislike": 7}': '{"', 'like', '":', ' ', '3', ',', ' "', 'dis', 'like', ...
def answer_tokens(like_top: dict[str, float], like: str, after: list[dict[str, object]] | None = None,
                  lead: str = " ") -> list[dict[str, object]]:
    head = [tok('{"'), tok("like"), tok('":')] + ([tok(lead)] if lead else [])
    rest = after if after is not None else [tok(","), tok(' "'), tok("dis"), tok("like"), tok('":'), tok(" "),
                                            tok("7", {"7": -0.1, "3": -2.0}), tok("}")]
    return [*head, tok(like, like_top), *rest]


def test_one_digit_numbers_are_read_at_the_like_token_and_renormalised() -> None:
    top = {"3": math.log(0.5), "1": math.log(0.2), "5": math.log(0.1), ",": math.log(0.1), "x": math.log(0.05)}
    scores = like_scores(answer_tokens(top, "3"), 5)
    assert scores is not None and len(scores) == 5
    p = probs(scores)
    assert p.sum() == pytest.approx(1.0)
    # 3, 1, 5 in the ratio 5:2:1; 2 and 4 unlisted: the smallest listed log-probability (0.05)
    assert p[2] / p[0] == pytest.approx(2.5) and p[0] / p[4] == pytest.approx(2.0)
    assert p[1] == pytest.approx(p[3]) and p[1] / p[4] == pytest.approx(0.5)
    # the dislike's digits (7 at -0.1) never leak into the like's distribution
    assert int(np.argmax(p)) == 2


def test_a_digit_glued_to_its_space_is_found_too() -> None:
    top = {" 2": math.log(0.6), " 4": math.log(0.3), "2": math.log(0.05)}
    scores = like_scores(answer_tokens(top, " 2", lead=""), 4)
    assert scores is not None
    p = probs(scores)
    assert p[1] / p[3] == pytest.approx(2.0)  # ' 2' vs ' 4'; the bare '2' starts no number after ':'


def test_ten_as_one_token() -> None:
    top = {"10": math.log(0.4), "1": math.log(0.2), "2": math.log(0.2)}
    scores = like_scores(answer_tokens(top, "10"), 10)
    assert scores is not None
    p = probs(scores)
    assert int(np.argmax(p)) == 9
    assert p[9] / p[1] == pytest.approx(2.0)


def test_ten_as_one_then_zero_uses_the_next_token_when_the_path_went_through_one() -> None:
    top = {"1": math.log(0.6), "2": math.log(0.3)}
    following = tok("0", {"0": math.log(0.75), ",": math.log(0.2), "5": math.log(0.01)})
    after = [following, tok(","), tok(' "'), tok("dis"), tok("like"), tok('":'), tok(" "), tok("2"), tok("}")]
    scores = like_scores(answer_tokens(top, "1", after), 10)
    assert scores is not None
    p = probs(scores)
    # P(10) = 0.6 * 0.75; P(1) = 0.6 * (1 - 0.75 - 0.01: every digit continues the number)
    assert p[9] / p[1] == pytest.approx(0.45 / 0.3)
    assert p[0] / p[1] == pytest.approx(0.6 * 0.24 / 0.3)


def test_ten_as_one_then_zero_off_the_greedy_path_splits_the_one_evenly() -> None:
    top = {"2": math.log(0.5), "1": math.log(0.4)}
    scores = like_scores(answer_tokens(top, "2"), 10)
    assert scores is not None
    p = probs(scores)
    assert p[0] == pytest.approx(p[9]) and p[1] / p[0] == pytest.approx(0.5 / 0.2)


def test_no_like_number_gives_none_and_no_logprobs_is_an_error() -> None:
    assert like_scores([tok("Sorry"), tok(", I cannot")], 10) is None
    assert like_scores(None, 10) is None
    choice = SimpleNamespace(logprobs=None, message=SimpleNamespace(content='{"like": 1, "dislike": 2}'))
    with pytest.raises(PngnnError, match="no logprobs") as info:
        scores_from_response(choice, 10)
    assert info.value.fix is not None and "PNGNN_LLM_SCORING=answer" in info.value.fix


def test_debias_removes_a_shared_position_preference() -> None:
    # Every prompt prefers position 1 by +2; prompt 0 prefers position 3 on top of that, prompt 1
    # position 2, prompt 2 position 3 (log-probability offsets).
    bias = np.array([2.0, 0.0, 0.0, 0.0])
    own = np.array([[0.0, 0.0, 1.5, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.2]])
    scores = bias + own
    assert raw_likes(scores).tolist() == [1, 1, 1]  # the bias wins everywhere
    assert debiased_likes(scores).tolist() == [3, 2, 4]
    # the dislike's position is never the like
    assert debiased_likes(scores, np.array([3, 1, 1])).tolist()[0] != 3


def test_debias_pads_prompts_with_fewer_candidates() -> None:
    matrix = score_matrix([[0.0, -1.0, -2.0], [-1.0, 0.0]])
    assert matrix.shape == (2, 3) and np.isnan(matrix[1, 2])
    assert debiased_likes(matrix).tolist()[1] in (1, 2)  # never the position it does not show


def test_scoring_setting_changes_the_cache_key_params() -> None:
    answer = LLMSettings(scoring="answer").sampling_params()
    logprobs = LLMSettings(scoring="logprobs").sampling_params()
    assert "logprobs" not in answer and logprobs["logprobs"] is True and logprobs["top_logprobs"] == 20
    with pytest.raises(PngnnError, match=r"(?i)scoring"):
        LLMSettings(scoring="ranking")


# -- the cache column and the merge, on real DuckDB files ---------------------------------------

OLD_FILE = """
CREATE TABLE llm_cache (
    key VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, prompt_version VARCHAR NOT NULL, request VARCHAR NOT NULL,
    raw_answer VARCHAR, status VARCHAR NOT NULL, like_idx INTEGER, dislike_idx INTEGER, error VARCHAR,
    latency_s DOUBLE, attempts INTEGER, prompt_tokens INTEGER, completion_tokens INTEGER, created TIMESTAMP NOT NULL,
    failure VARCHAR
);
INSERT INTO llm_cache (key, model, prompt_version, request, status, like_idx, dislike_idx, created)
VALUES ('old', 'm', 'v1', '{}', 'ok', 1, 2, now());
"""


def test_an_old_file_gets_the_scores_column_and_scores_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(OLD_FILE)
    con.close()
    scores = [-0.5, -1.25, -3.0]
    with Store(path) as store:
        cache = LLMCache(store)
        old = cache.get("old")
        assert old is not None and "scores" in old and old["scores"] is None and old["like_idx"] == 1
        cache.put(CacheEntry(key="new", model="m", prompt_version="v1", request="{}", status="ok", like_idx=1,
                             dislike_idx=3, scores=canonical_json(scores)))
    with Store(path) as store:  # opening again keeps both rows as they are
        new = LLMCache(store).get("new")
        assert new is not None and parse_scores(new["scores"]) == scores
        assert LLMCache(store).get("old")["scores"] is None  # type: ignore[index]


def _prompted(store: Store, rows: list[tuple[int, list[int], str, int, int, list[float]]]) -> None:
    """Prompts (user, items shown, key) and their cached answers (like, dislike, scores)."""
    for user, items, key, like, dislike, scores in rows:
        store.run_sql("INSERT INTO llm_prompts VALUES ('d', 1, $u, 0, 'm', $v, $k, $items, now(), NULL)",
                      u=user, v=PROMPT_VERSION, k=key, items=items)
        LLMCache(store).put(CacheEntry(key=key, model="m", prompt_version=PROMPT_VERSION, request="{}", status="ok",
                                       like_idx=like, dislike_idx=dislike, scores=canonical_json(scores)))


def test_merge_takes_the_debiased_like_with_logprobs_and_records_the_scoring(tmp_path: Path) -> None:
    # Every prompt's greedy like is position 1 (the shared bias); after the debias user 1 likes
    # position 3, user 2 position 2 (its dislike 3 excluded), user 3 position 4.
    bias = np.array([2.0, 0.0, 0.0, 0.0])
    own = [[0.0, 0.0, 1.5, 0.0], [0.0, 1.0, 1.4, 0.0], [0.0, 0.0, 0.0, 1.2]]
    with Store(tmp_path / "m.duckdb") as store:
        _prompted(store, [(1, [11, 12, 13, 14], "k1", 1, 2, (bias + own[0]).tolist()),
                          (2, [21, 22, 23, 24], "k2", 1, 3, (bias + own[1]).tolist()),
                          (3, [31, 32, 33, 34], "k3", 1, 2, (bias + own[2]).tolist())])

        def positives() -> list[tuple[int, int, str]]:
            return store.query_file("augmented_edges", dataset="d", seed=1).filter(
                pl.col("kind") == "positive").select("user_id", "item_id", "scoring").rows()

        answer = merge_augmented(store, "d", 1, "m", scoring="answer")
        assert positives() == [(1, 11, "answer"), (2, 21, "answer"), (3, 31, "answer")] and answer["scored"] == 0
        scored = merge_augmented(store, "d", 1, "m", scoring="logprobs")
        assert positives() == [(1, 13, "logprobs"), (2, 22, "logprobs"), (3, 34, "logprobs")]
        assert scored["scored"] == 3 and scored["positive"] == 3
        assert store.query_sql("SELECT scoring, scored_likes FROM augmented_merges").rows() == [("logprobs", 3)]
        negatives = store.query_sql("SELECT item_id FROM augmented_edges WHERE kind = 'negative' ORDER BY user_id")
        assert negatives["item_id"].to_list() == [12, 23, 32]  # the dislikes stay the answer's
        with pytest.raises(PngnnError, match="unknown scoring"):
            merge_augmented(store, "d", 1, "m", scoring="ranking")  # type: ignore[arg-type]


def test_scoring_by_logprobs_against_a_server_without_them_says_so(tmp_path: Path) -> None:
    """FaultLLMServer (a test double) answers the JSON but never sends logprobs."""
    with FaultLLMServer(Script(default=answer(2, 3))) as server:
        client = LLMClient(LLMSettings(base_url=server.base_url, model="fault-model", schema_mode="json_object",
                                       scoring="logprobs"))
        try:
            with pytest.raises(PngnnError, match=r"returned no logprobs.*PNGNN_LLM_SCORING=answer"):
                client.process(Request("k", messages("a prompt"), 10, PROMPT_VERSION))
            plain = LLMClient(LLMSettings(base_url=server.base_url, model="fault-model", schema_mode="json_object"))
            entry = plain.process(Request("k", messages("a prompt"), 10, PROMPT_VERSION))
            assert (entry.status, entry.like_idx, entry.scores) == ("ok", 2, None)
            plain.close()
        finally:
            client.close()
