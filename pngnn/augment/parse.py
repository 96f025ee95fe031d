"""Lenient reading, strict validation of the LLM's answer ``{"like": i, "dislike": j}``.

Servers without structured output (or small models ignoring it) wrap the JSON in prose
or a code fence, so the parser looks for the object wherever it is. What it then accepts
is strict: two integers within 1..n that differ. Anything else raises ``AnswerError``
with a short ``kind``; the caller records it as a failure. An answer is never guessed
(no "closest number", no default), because a guessed edge would be noise presented as
signal in the training graph.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pngnn.core.errors import PngnnError

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_INT_TEXT = re.compile(r"^\s*[+]?\d+\s*$")


class AnswerError(PngnnError):
    """An unusable LLM answer; ``kind`` is one of: empty, not_json, missing_key,
    not_int, out_of_range, same_index."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass(frozen=True)
class Answer:
    like: int  # 1-based candidate number
    dislike: int


def answer_schema(n: int) -> dict[str, Any]:
    """JSON schema of an answer for n candidates. ``enum`` rather than minimum/maximum:
    llama.cpp's grammar does not enforce integer bounds but does enforce enums."""
    numbers = list(range(1, n + 1))
    return {
        "type": "object",
        "properties": {
            "like": {"type": "integer", "enum": numbers},
            "dislike": {"type": "integer", "enum": numbers},
        },
        "required": ["like", "dislike"],
        "additionalProperties": False,
    }


def _objects(text: str) -> list[dict[str, Any]]:
    """JSON objects found in text: the whole text, fenced blocks, then any '{...}'."""
    found: list[dict[str, Any]] = []
    candidates = [text, *(m.group(1) for m in _FENCE.finditer(text))]
    for chunk in candidates:
        try:
            value = json.loads(chunk)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    if found:
        return found
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool):  # bool is an int subclass; true/false is not a number
        raise AnswerError("not_int", f"'{name}' is {value!r}, not a candidate number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.match(value):
        return int(value)
    raise AnswerError("not_int", f"'{name}' is {value!r}, not a candidate number")


def parse_answer(text: str | None, n: int) -> Answer:
    """The validated answer in ``text`` for a prompt with ``n`` candidates, or AnswerError."""
    if text is None or not text.strip():
        raise AnswerError("empty", "the model returned no text")
    objects = _objects(text)
    if not objects:
        raise AnswerError("not_json", f"no JSON object in the answer {text[:80]!r}")
    # Prefer the first object that carries both keys (prose may quote other JSON first).
    lowered = [{str(k).strip().lower(): v for k, v in obj.items()} for obj in objects]
    obj = next((o for o in lowered if "like" in o and "dislike" in o), None)
    if obj is None:
        raise AnswerError("missing_key", f"the answer lacks 'like' and/or 'dislike': {text[:80]!r}")
    like, dislike = _as_int(obj["like"], "like"), _as_int(obj["dislike"], "dislike")
    for name, value in (("like", like), ("dislike", dislike)):
        if not 1 <= value <= n:
            raise AnswerError("out_of_range", f"'{name}' is {value}, outside the candidate numbers 1..{n}")
    if like == dislike:
        raise AnswerError("same_index", f"'like' and 'dislike' are both {like}")
    return Answer(like, dislike)
