"""The answer parser: lenient about where the JSON is, strict about what it says."""

from __future__ import annotations

import pytest

from pngnn.augment.parse import Answer, AnswerError, answer_schema, parse_answer
from pngnn.core.errors import PngnnError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"like": 3, "dislike": 7}', Answer(3, 7)),
        ('  {"dislike": 1, "like": 10}\n', Answer(10, 1)),
        ('```json\n{"like": 2, "dislike": 5}\n```', Answer(2, 5)),
        ('```\n{"like": 4, "dislike": 9}\n```', Answer(4, 9)),
        ('Sure! Here is my answer: {"like": 6, "dislike": 8}. Hope it helps.', Answer(6, 8)),
        ('{"note": "thinking"} then {"like": 2, "dislike": 3}', Answer(2, 3)),
        ('{"Like": "5", "DISLIKE": 6.0}', Answer(5, 6)),
    ],
)
def test_accepts_json_wherever_it_is(text: str, expected: Answer) -> None:
    assert parse_answer(text, 10) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (None, "empty"),
        ("   ", "empty"),
        ("I would pick the second movie.", "not_json"),
        ('{"like": 3, "dislike": ', "not_json"),  # truncated by max_tokens
        ('{"favourite": 3}', "missing_key"),
        ('{"like": 3}', "missing_key"),
        ('{"like": "three", "dislike": 4}', "not_int"),
        ('{"like": 2.5, "dislike": 4}', "not_int"),
        ('{"like": true, "dislike": 4}', "not_int"),
        ('{"like": [1], "dislike": 4}', "not_int"),
        ('{"like": 0, "dislike": 4}', "out_of_range"),
        ('{"like": 3, "dislike": 11}', "out_of_range"),
        ('{"like": -1, "dislike": 4}', "out_of_range"),
        ('{"like": 4, "dislike": 4}', "same_index"),
        ('["like", 1, "dislike", 2]', "not_json"),
    ],
)
def test_unusable_answers_are_typed_errors_never_guesses(text: str | None, kind: str) -> None:
    with pytest.raises(AnswerError) as info:
        parse_answer(text, 10)
    assert info.value.kind == kind
    assert isinstance(info.value, PngnnError)  # recorded by the client, one line
    assert "\n" not in str(info.value)


def test_range_follows_the_number_of_candidates() -> None:
    assert parse_answer('{"like": 3, "dislike": 1}', 3) == Answer(3, 1)
    with pytest.raises(AnswerError, match=r"1\.\.2"):
        parse_answer('{"like": 3, "dislike": 1}', 2)


def test_schema_enumerates_the_candidate_numbers() -> None:
    schema = answer_schema(4)
    assert schema["required"] == ["like", "dislike"]
    for key in ("like", "dislike"):
        assert schema["properties"][key]["enum"] == [1, 2, 3, 4]  # enum: llama.cpp ignores min/max
    assert schema["additionalProperties"] is False
