"""LLM augmentation (after LLMRec): ask an LLM which LightGCN candidates a user would like
most and least, and turn the answers into positive and negative graph edges.

Flow: ``augment`` (candidates -> prompts -> cached LLM answers) then ``merge_augmented``
(answers -> ``augmented_edges``), then ``load_augmented`` for training and
``edge_precision`` for the edges' own quality. Everything is stored in DuckDB (tables in
``pngnn/data/sql/llm.sql``), so runs resume and cached answers are never requested twice.
``edges`` names which LLM's edges a run trains on and adds them to a split. May import
``pngnn.training`` (the candidate LightGCN), ``pngnn.models``, ``pngnn.evaluation``,
``pngnn.data`` and ``pngnn.core``.
"""

from pngnn.augment.cache import LLMCache, cache_key
from pngnn.augment.client import LLMClient
from pngnn.augment.merge import edge_precision, load_augmented, merge_augmented
from pngnn.augment.parse import Answer, AnswerError, parse_answer
from pngnn.augment.pipeline import AugmentSummary, augment
from pngnn.augment.prompts import PROMPT_TEMPLATE, PROMPT_VERSION
from pngnn.augment.step import augment_step

__all__ = [
    "PROMPT_TEMPLATE",
    "PROMPT_VERSION",
    "Answer",
    "AnswerError",
    "AugmentSummary",
    "LLMCache",
    "LLMClient",
    "augment",
    "augment_step",
    "cache_key",
    "edge_precision",
    "load_augmented",
    "merge_augmented",
    "parse_answer",
]
