"""An epoch's random draws (pair order, negatives, per-epoch features) made while the previous
epoch trains.

Why: the draws depend only on the random streams, never on the model, and at scale they are a
real share of an epoch (40 negatives a pair is 640 M items at 20 M ratings); on a GPU the host
sits idle while the device trains, so drawing the next epoch then hides them. The draws come from
the same streams in the same order as drawn in line, so training is identical either way.

What a checkpoint must save is the streams' state before the draw of the epoch after it (the
state an in-line run would have there); ``stream_states`` holds that snapshot while the next
draw is under way, and a resumed run draws that epoch again from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EpochDraw:
    """One epoch's draws: the pair order, its negatives [pairs, n_neg], the drawn features."""

    order: np.ndarray
    negatives: np.ndarray
    features: dict[str, np.ndarray]


class DrawAhead:
    """Hands out each epoch's ``EpochDraw``, the next one drawn in a background thread.

    ``draw``: makes one epoch's draws from ``streams`` (the only generators it may touch);
    ``ahead``: False draws in line when asked (the same draws, one after the other)."""

    def __init__(self, draw: Callable[[], EpochDraw], streams: Mapping[str, np.random.Generator],
                 ahead: bool = True) -> None:
        self._draw = draw
        self._streams = streams
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="epoch-draw") if ahead else None
        self._pending: Future[EpochDraw] | None = None
        self._before_pending: dict[str, Any] | None = None

    def take(self) -> EpochDraw:
        """This epoch's draws: the ones drawn ahead, or drawn now."""
        if self._pending is None:
            return self._draw()
        pending, self._pending, self._before_pending = self._pending, None, None
        return pending.result()

    def start_next(self) -> None:
        """Start drawing the next epoch (in line: nothing to do until ``take``)."""
        if self._pool is None or self._pending is not None:
            return
        self._before_pending = self._states_now()
        self._pending = self._pool.submit(self._draw)

    def stream_states(self) -> dict[str, Any]:
        """The streams' state as an in-line run has it between this epoch and the next."""
        if self._before_pending is not None:
            return self._before_pending
        return self._states_now()

    def _states_now(self) -> dict[str, Any]:
        return {name: g.bit_generator.state for name, g in self._streams.items()}

    def close(self) -> None:
        """Wait for a draw under way (its result unused) and stop the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pending = self._before_pending = None

    def __enter__(self) -> DrawAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
