"""The augment task: the tags of runs on its edges, and a failed share it fails on (and retries)."""

from __future__ import annotations

import pytest

from pngnn.augment.edges import EdgeSource
from pngnn.augment.prompts import PROMPT_VERSION
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings
from tasks.augment import augment_task


def test_llm_tags_name_the_model_and_prompt_version():
    tags = EdgeSource.of({"model": "m1", "users": 3}, {"model": "served-as", "prompt_version": "v9"}).tags()
    assert tags == {"llm_model": "served-as", "prompt_version": "v9"}
    assert EdgeSource.of(LLMSettings(model="m2", prompt_version="v3")).tags()["prompt_version"] == "v3"
    assert EdgeSource.of(LLMSettings(model="m2")).tags() == {"llm_model": "m2", "prompt_version": PROMPT_VERSION}
    assert EdgeSource.from_tags(EdgeSource.of(LLMSettings(model="m2")).tags()) == EdgeSource("m2", PROMPT_VERSION)


def test_too_many_failed_prompts_fail_the_task_with_an_error_it_retries(monkeypatch, ml100k_db_copy, ml100k_split,
                                                                        ml100k_lightgcn):
    """The flow's augment task fails (so the flow run ends Failed) when 429s leave every
    prompt unanswered; the error is transient, so the task's retries ask again and heal."""
    from fault_llm_server import FaultLLMServer, rate_limit
    from prefect.states import Failed

    from pngnn.augment.candidates import candidates_frame, save_candidates, select_users
    from pngnn.core.errors import TransientError
    from pngnn.data.store import Store
    from tasks.augment import _retry_unless_user_error

    with Store(ml100k_db_copy) as store:
        chosen = select_users(store, "ml-100k", sample=6, by="sparsest", seed=1)  # as LLMSettings picks
        save_candidates(store, "ml-100k", 1, candidates_frame(store, ml100k_split, ml100k_lightgcn, chosen))
    monkeypatch.setenv("PNGNN_DB", str(ml100k_db_copy))
    monkeypatch.setenv("PNGNN_LLM_SCHEMA_MODE", "json_object")
    with FaultLLMServer() as server:
        llm = LLMSettings(model="fault-model", base_url=server.base_url, users=6)
        server.push(*[rate_limit(0)] * (5 * 6))
        with pytest.raises(TransientError, match=r"6 of 6 LLM prompts .* no usable answer") as info:
            augment_task.fn("ml-100k", 1, llm)

        assert _retry_unless_user_error(None, None, Failed(data=info.value)) is True
        counts = augment_task.fn("ml-100k", 1, llm)  # the retry, against the server now healthy
    assert (counts["sent"], counts["usable"], counts["failed_transient"]) == (6, 6, 0)
    with pytest.raises(PngnnError, match=r"LLM setting max_failed_share=1\.5"):
        LLMSettings(max_failed_share=1.5)
