"""The augment task's seam: without ``pngnn.augment.augment_step`` it fails clearly, never silently."""

from __future__ import annotations

import sys

import pytest

from pngnn.errors import PngnnError
from pngnn.settings import LLMSettings
from tasks.augment import augment_task, llm_tags, load_augment


def test_missing_augmentation_module_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "pngnn.augment", None)  # as if the package were not there
    with pytest.raises(PngnnError) as err:
        load_augment()
    msg = str(err.value)
    assert msg.startswith("LLM augmentation is not available: pngnn.augment.augment_step cannot be loaded")
    assert "lightgcn, pngnn" in msg and "\n" not in msg
    with pytest.raises(PngnnError, match="augment_step cannot be loaded"):
        augment_task.fn("ml-100k", 1, LLMSettings())  # the task body, as the flow runs it


def test_module_without_the_entry_point_fails_too(monkeypatch):
    import types

    monkeypatch.setitem(sys.modules, "pngnn.augment", types.ModuleType("pngnn.augment"))
    with pytest.raises(PngnnError, match="has no attribute 'augment_step'"):
        load_augment()


def test_llm_tags_name_the_model_and_prompt_version():
    tags = llm_tags({"model": "m1", "users": 3}, {"model": "served-as", "prompt_version": "v9"})
    assert tags == {"llm_model": "served-as", "prompt_version": "v9"}
    assert llm_tags(LLMSettings(model="m2", prompt_version="v3"))["prompt_version"] == "v3"
    assert llm_tags(LLMSettings(model="m2"))["llm_model"] == "m2"
