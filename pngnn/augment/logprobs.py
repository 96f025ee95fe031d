"""Candidate scores from the model's own log-probabilities, and their position debias.

Why: a small model's greedy JSON answer is one argmax over a distribution it barely
separates, and that argmax is mostly the shown position (SmolLM2-135M answers like=1 for
most prompts). The distribution over the candidate numbers at the token where the "like"
number starts keeps what the argmax throws away; subtracting, per shown position, its mean
over the batch (contextual calibration, Zhao et al. 2021) removes the part that is the same
for every prompt, i.e. the position bias, and leaves what depends on the user.

The number is read from the OpenAI ``logprobs.content`` list (token, logprob, top_logprobs),
which llama.cpp's server returns with ``logprobs=True, top_logprobs=k``. Multi-digit numbers:
a tokenizer that splits digits (SmolLM2's does: "10" is "1" then "0") makes P(like=10) =
P("1") * P("0" | "1"). The conditional is known only when the greedy path went through "1"
(then it is in the next token's top_logprobs); otherwise the mass of "1" is split evenly
between 1 and 10, the only choice that favours neither. A tokenizer with a "10" token (one
listed among the alternatives) needs no split: that token's own probability is used, and
its "1" stands for 1.

Scores are log-probabilities renormalised over the candidate numbers 1..n (log-softmax over
the candidates), so scores of different prompts are on one scale for the debias. A number
the server did not list among the top_logprobs gets the smallest listed log-probability,
an upper bound on its true value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from pngnn.core.errors import UserError

_LIKE_KEY = re.compile(r'"like"\s*:\s*"?$')  # the text just before the like number starts
_DIGITS = re.compile(r"^\d+$")


class _Top(Protocol):
    token: str
    logprob: float


class _Token(Protocol):
    token: str
    logprob: float
    top_logprobs: Sequence[Any]


def _as_pairs(top: Sequence[Any]) -> list[tuple[str, float]]:
    """(token, logprob) pairs of a top_logprobs list (SDK objects or plain dicts)."""
    pairs = []
    for t in top:
        token = t["token"] if isinstance(t, dict) else t.token
        logprob = t["logprob"] if isinstance(t, dict) else t.logprob
        pairs.append((str(token), float(logprob)))
    return pairs


def _token(t: Any) -> tuple[str, list[tuple[str, float]]]:
    if isinstance(t, dict):
        return str(t["token"]), _as_pairs(t.get("top_logprobs") or [])
    return str(t.token), _as_pairs(t.top_logprobs or [])


def _logsumexp(values: list[float]) -> float:
    if not values:
        return -math.inf
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def like_scores(content: Sequence[Any] | None, n: int) -> list[float] | None:
    """Log-probabilities (renormalised over 1..n) of each candidate number as the "like"
    answer, read from a chat completion's ``logprobs.content``; None when the tokens hold no
    ``"like":`` followed by a number (the caller keeps the JSON answer for that prompt).

    ``content``: the list of generated tokens with their ``top_logprobs`` (SDK objects or
    dicts). ``n``: number of candidates."""
    if not content:
        return None
    tokens = [_token(t) for t in content]
    text = ""
    for i, (token, top) in enumerate(tokens):
        # The number starts in this token when the text so far ends with '"like": ' and this
        # token brings a digit (possibly after spaces it carries itself, e.g. ' 3').
        stripped = token.lstrip(" ")
        if _LIKE_KEY.search(text) and stripped[:1].isdigit():
            lead = token[: len(token) - len(stripped)]
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            return _number_scores(lead, token, top, following, n)
        text += token
    return None


def _number_scores(lead: str, chosen: str, top: list[tuple[str, float]],
                   following: tuple[str, list[tuple[str, float]]] | None, n: int) -> list[float]:
    """Candidate log-probabilities from the top_logprobs of the token where the number starts
    (``lead``: spaces that token carries before its digits) and, for two-digit numbers split
    across tokens, of the token after it on the greedy path."""
    mass: dict[int, list[float]] = {}  # candidate -> log-probability terms (summed)
    first_digit: dict[str, float] = {}  # a one-digit alternative that may begin a longer number
    listed = [lp for _, lp in top]
    for token, logprob in top:
        if not token.startswith(lead):
            continue
        rest = token[len(lead):]
        digits = re.match(r"\d+", rest)
        if digits is None or digits.group() != rest.rstrip(",}\" "):
            continue  # not a number (or a number glued to something other than its end)
        number = int(digits.group())
        if len(digits.group()) == 1 and rest == digits.group():
            first_digit[digits.group()] = logprob  # ends here, or continues in the next token
        elif 1 <= number <= n:
            mass.setdefault(number, []).append(logprob)
    chosen_digits = chosen[len(lead):]
    # A tokenizer with multi-digit tokens writes 10 as "10": its "1" then ends the number.
    splits_digits = not any(len(number) > 1 for number in map(str, mass))
    for digit, logprob in first_digit.items():
        longer = [int(digit + d) for d in "0123456789" if 1 <= int(digit + d) <= n and digit != "0"]
        if not splits_digits:
            longer = []
        single = int(digit)
        if not longer:
            if 1 <= single <= n:
                mass.setdefault(single, []).append(logprob)
            continue
        if digit == chosen_digits and following is not None:
            # The greedy path went through this digit: the next token says how the number goes on.
            cont = {tok: lp for tok, lp in following[1] if _DIGITS.match(tok)}
            cont_p = {int(digit + tok): math.exp(lp) for tok, lp in cont.items() if len(tok) == 1}
            for number, p in cont_p.items():
                if number in longer:
                    mass.setdefault(number, []).append(logprob + math.log(p))
            ends = 1.0 - sum(math.exp(lp) for lp in cont.values())  # anything but a digit ends it
            if 1 <= single <= n:
                mass.setdefault(single, []).append(logprob + math.log(max(ends, 1e-12)))
        else:  # not observed: split evenly between the number and its continuations
            share = math.log(1 + len(longer))
            for number in (single, *longer):
                if 1 <= number <= n:
                    mass.setdefault(number, []).append(logprob - share)
    floor = min(listed) if listed else -30.0
    raw = np.array([_logsumexp(mass[c]) if c in mass else floor for c in range(1, n + 1)], dtype=np.float64)
    normalised = raw - _logsumexp(raw.tolist())
    return [round(float(v), 6) for v in normalised]


def scores_from_response(choice: Any, n: int) -> list[float] | None:
    """``like_scores`` of one chat-completion choice, or a PngnnError when the server sent no
    log-probabilities at all (it ignores ``logprobs``: scoring by them cannot work there), which
    ends the run: asking on would cache answers in a mode that cannot deliver it."""
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        raise UserError(
            "the LLM server returned no logprobs although PNGNN_LLM_SCORING=logprobs asked for them",
            "set PNGNN_LLM_SCORING=answer (score by the JSON answer), or use a server that returns logprobs "
            "(llama.cpp, vLLM, OpenAI)",
        )
    return like_scores(content, n)


def parse_scores(text: str | None) -> list[float] | None:
    """A ``scores`` cell of llm_cache (JSON list) back to floats; None stays None."""
    return None if text is None else [float(v) for v in json.loads(text)]


def debiased_likes(scores: np.ndarray, dislike: np.ndarray | None = None) -> np.ndarray:
    """1-based like per prompt: the argmax of ``scores`` (prompts x positions, NaN where a
    prompt shows fewer candidates) after subtracting each position's mean over the prompts
    (contextual calibration). ``dislike`` (1-based, per prompt): that position is never the
    like, so a prompt never gets the same item as both edges."""
    if scores.ndim != 2 or scores.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    centred = scores - np.nanmean(scores, axis=0, keepdims=True)
    return _argmax(centred, dislike)


def raw_likes(scores: np.ndarray, dislike: np.ndarray | None = None) -> np.ndarray:
    """1-based argmax of the scores as they are (no debias); ``dislike`` as in ``debiased_likes``."""
    if scores.ndim != 2 or scores.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return _argmax(scores.copy(), dislike)


def _argmax(values: np.ndarray, dislike: np.ndarray | None) -> np.ndarray:
    values = np.where(np.isnan(values), -np.inf, values)
    if dislike is not None:
        rows = np.arange(values.shape[0])
        valid = (dislike >= 1) & (dislike <= values.shape[1])
        values[rows[valid], dislike[valid] - 1] = -np.inf
    return np.argmax(values, axis=1).astype(np.int64) + 1


def score_matrix(rows: Sequence[list[float]]) -> np.ndarray:
    """Score lists (possibly of different lengths) as one NaN-padded prompts x positions array."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), np.nan, dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
