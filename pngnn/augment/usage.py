"""What an augmentation costs in tokens, and at a stated price in money: the what-if's lift
gets its price next to it (``pngnn report --whatif --price-per-million``).

Why from the cache: the tokens a prompt costs are what the LLM's own server counted (its
``usage``, stored with each answer in ``llm_cache``); the what-if's simulated answerer has no
tokenizer and reports none, so the what-if prices its prompts at what a real LLM's answers to the
same dataset's prompts cost (the same template, history and candidates sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

from pngnn.core.errors import PngnnError
from pngnn.data.store import Store


@dataclass(frozen=True)
class TokenUsage:
    """Mean tokens a prompt and its answer cost, over ``prompts`` answered prompts of ``models``."""

    prompts: int
    prompt_tokens: float
    completion_tokens: float
    models: str

    @property
    def per_prompt(self) -> float:
        return self.prompt_tokens + self.completion_tokens


def token_usage(store: Store, dataset: str) -> TokenUsage:
    """The mean usage of the real LLMs' answers to ``dataset``'s prompts in ``store``; a one-line
    error naming the fixes when no answer there carries one."""
    row = store.query_file("token_usage", dataset=dataset).row(0, named=True)
    if not row["prompts"]:
        raise PngnnError(f"no LLM answer to a {dataset} prompt in {store.path} reports its token usage, so the "
                         "what-if's prompts cannot be priced",
                         f"run `pngnn augment --dataset {dataset} --users 20` against your LLM first, or give "
                         "--tokens-per-prompt")
    return TokenUsage(int(row["prompts"]), float(row["prompt_tokens"]), float(row["completion_tokens"]),
                      str(row["models"]))


def check_price(usd_per_million: float, tokens_per_prompt: float | None = None) -> None:
    """A price and a token count that are positive numbers (None: to be measured)."""
    if not usd_per_million > 0 or (tokens_per_prompt is not None and not tokens_per_prompt > 0):
        raise PngnnError(f"a price needs a positive price per million tokens and tokens per prompt, got "
                         f"{usd_per_million} and {tokens_per_prompt}", "pass e.g. --price-per-million 0.5")


@dataclass(frozen=True)
class Price:
    """A stated price (USD a million tokens) and the tokens a prompt costs."""

    usd_per_million: float
    tokens_per_prompt: float

    def __post_init__(self) -> None:
        check_price(self.usd_per_million, self.tokens_per_prompt)

    def cost(self, prompts: int) -> float:
        """USD of ``prompts`` prompts."""
        return prompts * self.tokens_per_prompt * self.usd_per_million / 1e6

    def per_gain(self, prompts: int, gain: float, unit: float = 0.001) -> float | None:
        """USD per ``unit`` of metric gained; None where nothing was gained."""
        return self.cost(prompts) / (gain / unit) if gain > 0 else None
