"""Which LLM edges a run trains on, and a stored split with those edges merged in.

A split may hold the edges of several LLMs and prompt versions; a run names one source
(``EdgeSource``) and ``load_split_step`` adds exactly that source's edges to the split.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pngnn.augment.merge import load_augmented
from pngnn.augment.wording import PROMPT_VERSION, Wording, prompt_version_for, wording_for
from pngnn.core.errors import PngnnError
from pngnn.core.settings import LLMSettings, Settings
from pngnn.data.split import SplitData, load_split
from pngnn.data.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeSource:
    """Which LLM edges a run trains on: those one model merged with one prompt version.

    A split may hold the edges of several LLMs and prompts (each merge keeps its own); a run
    tagged with one of them must train on that one's edges only."""

    model: str
    prompt_version: str

    @classmethod
    def of(cls, llm: LLMSettings | Mapping[str, Any], counts: Mapping[str, Any] | None = None,
           default_version: str = PROMPT_VERSION) -> EdgeSource:
        """The edges an augmentation with ``llm`` merged: its model and prompt version (unless set,
        ``default_version``: the dataset's, see ``dataset_prompt_version``), or those its ``counts``
        record (the name a server answered under)."""
        llm, counts = LLMSettings.model_validate(llm), counts or {}
        return cls(str(counts.get("model") or llm.model),
                   str(counts.get("prompt_version") or llm.prompt_version or default_version))

    def tags(self) -> dict[str, str]:
        """The MLflow tags of a run trained on these edges (read back by ``from_tags``)."""
        return {"llm_model": self.model, "prompt_version": self.prompt_version}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str] | None) -> EdgeSource:
        """The source named by a run's MLflow tags (``llm_model``, ``prompt_version``)."""
        tags = tags or {}
        if not tags.get("llm_model") or not tags.get("prompt_version"):
            raise PngnnError("an llm- method needs to know which LLM edges to train on (tags llm_model and "
                             f"prompt_version), got {dict(tags)}; run it through a flow that augments first")
        return cls(tags["llm_model"], tags["prompt_version"])


def dataset_prompt_version(settings: Settings, dataset: str) -> str:
    """The prompt version this code asks ``dataset`` with: MovieLens' or a user catalogue's."""
    with Store(settings.db_path) as store:
        return prompt_version_for(store, dataset)


def dataset_wording(settings: Settings, dataset: str) -> Wording:
    """The wording ``dataset``'s prompts are asked with (refused in one line when it cannot be asked)."""
    with Store(settings.db_path) as store:
        return wording_for(store, dataset)


def load_split_step(settings: Settings, dataset: str, seed: int, edges: EdgeSource | None = None) -> SplitData:
    """A stored split; with ``edges``, plus the LLM edges that source merged for it (an error
    when it merged none: training on no edges would pass silently for an LLM run)."""
    with Store(settings.db_path) as store:
        split = load_split(store, dataset, seed)
    return split if edges is None else with_llm_edges(settings, split, edges)


def with_llm_edges(settings: Settings, split: SplitData, edges: EdgeSource) -> SplitData:
    """``split`` (as loaded once by the caller) plus the LLM edges ``edges`` merged for it; an error
    when it merged none."""
    dataset, seed = split.dataset, split.seed
    with Store(settings.db_path) as store:
        positive, negative = load_augmented(store, dataset, seed, edges.model, edges.prompt_version)
        if not len(positive) + len(negative):
            raise PngnnError(
                f"no LLM edges of model '{edges.model}' (prompt {edges.prompt_version}) for {dataset} split "
                f"{seed}; run `pngnn augment --dataset {dataset} --seed {seed} --model {edges.model}` first"
            )
        warn_partial_coverage(store, dataset, seed, edges)
    return split.with_augmented(positive, negative)


def warn_partial_coverage(store: Store, dataset: str, seed: int, edges: EdgeSource) -> None:
    """One warning line when the LLM edges reach fewer users than the LLM was asked about:
    an LLM run on a handful of edges must not pass for one on the whole sample."""
    row = store.query_file("edge_coverage", dataset=dataset, seed=seed, model=edges.model,
                           prompt_version=edges.prompt_version).row(0, named=True)
    asked, answered, covered = row["asked"], row["answered"], row["covered"]
    if covered >= asked:
        return
    unanswered, dropped = asked - answered, max(0, answered - covered)
    # Only unanswered prompts are worth asking again; a dropped answer (its items already rated in
    # the split) comes back the same, so the line must not send the user to rerun for those.
    fix = (f"rerun `pngnn augment --dataset {dataset} --seed {seed} --model {edges.model}` to ask the failed prompts "
           "again" if unanswered else "every prompt was answered, so a rerun would not change it")
    log.warning("LLM edges of model '%s' (prompt %s) cover %d of the %d users asked on %s split %d (%d without a "
                "usable answer, %d whose answers were dropped by the merge); %s", edges.model, edges.prompt_version,
                covered, asked, dataset, seed, unanswered, dropped, fix)
