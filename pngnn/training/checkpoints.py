"""Training checkpoints: a killed run continues where it stopped, with the result it would have had.

A checkpoint holds everything the next epoch of ``pngnn.training.train.fit`` depends on: the weights,
the optimiser's moments, every random stream (the pair order's, the negative sampler's, the
epoch features' and torch's and numpy's global ones), the loss history and the early-stopping
watch. Resuming from it therefore replays the remaining epochs draw for draw, not just
"roughly where it was".

A checkpoint is tied to its *run key* (dataset, method, split, full training config, LLM
edges) and to the code's commit: resuming a run of other settings or other code would give a
result that neither run would have had, so it is refused rather than silently mixed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pngnn.core.config import TrainConfig
from pngnn.core.constants import CHECKPOINT_EVERY
from pngnn.core.errors import PngnnError
from pngnn.core.provenance import git_commit
from pngnn.data.split import SplitData

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


def run_identity(split: SplitData, method: str, cfg: TrainConfig) -> dict[str, Any]:
    """What makes two training runs the same run (they would train the same model)."""
    return {"dataset": split.dataset, "method": method, "split_seed": split.seed,
            "split_sizes": [len(split.train), len(split.valid), len(split.test)],
            "config": cfg.to_dict(), **split.augmented_digest()}


def identity_key(identity: Mapping[str, Any]) -> str:
    """A short stable hash of a run identity: the name a run goes by in MLflow tags and checkpoints."""
    return hashlib.sha256(json.dumps(dict(identity), sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_key(split: SplitData, method: str, cfg: TrainConfig) -> str:
    return identity_key(run_identity(split, method, cfg))


def checkpoint_path(record_path: Path) -> Path:
    """The checkpoint of a run lies next to the run's record (``seed1.json`` -> ``seed1.ckpt``)."""
    return record_path.with_suffix(".ckpt")


def check_checkpoint_options(record_path: Path, every: int, resume: bool | None) -> None:
    """Bad checkpoint options fail before any work: a negative interval, or ``--resume``
    where there is nothing to resume."""
    if every < 0:
        raise PngnnError(f"--checkpoint-every must be >= 0 (0: no checkpoints), got {every}")
    if resume:
        require_checkpoint(checkpoint_path(record_path))


def require_checkpoint(path: Path) -> None:
    if not path.is_file():
        raise PngnnError(f"no checkpoint to resume at {path}; run without --resume to start over "
                         "(checkpoints are written every --checkpoint-every epochs)")


def rng_states(streams: Mapping[str, np.random.Generator],
               stream_states: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The state of every random stream training draws from, in a form ``torch.load(weights_only=True)`` reads.
    ``stream_states``: the named streams' states to save instead of their current ones (while the
    next epoch is drawn ahead, ``pngnn.training.draw_ahead``)."""
    legacy = np.random.get_state(legacy=False)
    legacy["state"]["key"] = legacy["state"]["key"].tolist()
    states = dict(stream_states) if stream_states is not None else {name: g.bit_generator.state
                                                                   for name, g in streams.items()}
    return {"torch": torch.get_rng_state(), "numpy": legacy, "streams": states}


def restore_rng_states(states: Mapping[str, Any], streams: Mapping[str, np.random.Generator]) -> None:
    """Put every stream back where ``rng_states`` saw it; a stream the checkpoint lacks is an error."""
    missing = set(streams) - set(states["streams"])
    if missing:
        raise PngnnError(f"the checkpoint holds no state of the random stream(s) {sorted(missing)}; pass "
                         "--no-resume to start over")
    torch.set_rng_state(states["torch"])
    legacy = dict(states["numpy"])
    legacy["state"] = {**legacy["state"], "key": np.asarray(legacy["state"]["key"], dtype=np.uint32)}
    np.random.set_state(legacy)
    for name, g in streams.items():
        g.bit_generator.state = states["streams"][name]


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The names under which two run identities differ (config fields by their own name)."""
    names = [k for k in sorted(set(old) | set(new)) if k != "config" and old.get(k) != new.get(k)]
    old_cfg, new_cfg = old.get("config", {}), new.get("config", {})
    return names + [k for k in sorted(set(old_cfg) | set(new_cfg)) if old_cfg.get(k) != new_cfg.get(k)]


def _atomic_save(payload: Mapping[str, Any], path: Path) -> None:
    """``torch.save`` through a temporary file of its own and a rename: a kill mid-write
    leaves the previous checkpoint, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            torch.save(dict(payload), out)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Checkpointer:
    """Where one run's checkpoint goes, how often, and whether to resume from it.

    ``every``: epochs between checkpoints (0: none written). ``resume``: True resumes or fails,
    False always starts over, None resumes when the checkpoint is of this very run and
    otherwise starts over. ``on_save``: told the path after each write (a tracked run logs it
    as an MLflow artifact)."""

    path: Path
    identity: dict[str, Any]
    every: int = CHECKPOINT_EVERY
    resume: bool | None = None
    commit: str = field(default_factory=git_commit)
    on_save: Callable[[Path], None] | None = None

    def __post_init__(self) -> None:
        if self.every < 0:
            raise PngnnError(f"checkpoint interval must be >= 0 (0: no checkpoints), got {self.every}")

    @classmethod
    def for_run(cls, record_path: Path, split: SplitData, method: str, cfg: TrainConfig, **options: Any
                ) -> Checkpointer:
        return cls(checkpoint_path(record_path), run_identity(split, method, cfg), **options)

    @property
    def key(self) -> str:
        return identity_key(self.identity)

    def due(self, epoch: int, last: bool) -> bool:
        """Write after every ``every``-th epoch, and after the last one when writing at all (a kill
        during evaluation then costs no training)."""
        return self.every > 0 and (epoch % self.every == 0 or last)

    def save(self, state: Mapping[str, Any]) -> None:
        _atomic_save({"format": CHECKPOINT_FORMAT, "key": self.key, "identity": self.identity,
                      "commit": self.commit, **state}, self.path)
        if self.on_save is not None:
            self.on_save(self.path)

    @cached_property
    def restored(self) -> dict[str, Any] | None:
        """The checkpoint's training state to continue from, or None to start over (read once)."""
        if self.resume is False:
            return None
        if self.resume:
            require_checkpoint(self.path)
        if not self.path.is_file():
            return None
        payload = self._read()
        why = self._mismatch(payload)
        if why is None:
            return payload
        if self.resume:
            raise PngnnError(f"checkpoint {self.path} is of {why}; rerun with the settings it was written with, "
                             "or pass --no-resume to start over")
        log.warning("not resuming %s: it is of %s; starting over", self.path, why)
        return None

    def _read(self) -> dict[str, Any]:
        try:
            return torch.load(self.path, weights_only=True, map_location="cpu")  # a GPU run resumes anywhere
        except Exception as exc:  # torch raises many kinds for a truncated or foreign file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PngnnError(f"checkpoint {self.path} cannot be read ({first}); delete it or pass --no-resume to "
                             "start over") from None

    def _mismatch(self, payload: Mapping[str, Any]) -> str | None:
        if payload.get("format") != CHECKPOINT_FORMAT:
            return f"checkpoint format {payload.get('format')} (this code writes {CHECKPOINT_FORMAT})"
        if payload.get("key") != self.key:
            return "other settings (" + ", ".join(_differences(payload.get("identity", {}), self.identity)) + ")"
        if payload.get("commit") != self.commit:
            return f"commit {payload.get('commit')}, not {self.commit}"
        return None

    def interrupted_hint(self) -> str:
        """What an interrupted run can do next, in one line."""
        if not self.path.is_file():
            return "interrupted before the first checkpoint; a rerun starts over"
        return f"interrupted; the same command continues from the checkpoint {self.path}"

    def finish(self) -> None:
        """The run's record is written: the checkpoint has served and goes."""
        self.path.unlink(missing_ok=True)
