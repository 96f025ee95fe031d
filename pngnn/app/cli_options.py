"""The options several commands share (``pngnn.app.cli``'s and ``flows.cli``'s ``run``), declared once,
and the value types every command's numbers go through.

One declaration per option means one help text and one default: ``--seed`` or ``--dataset``
cannot say one thing on ``train`` and another on ``run``. Typer names each option after the
parameter that carries the type, so ``base_url: LLMBaseURL`` is ``--base-url`` and
``llm_base_url: LLMBaseURL`` is ``--llm-base-url``.

The value types (``split_seed``, ``random_seed``, ``count``, ``share``, ...) are parsers that
typer calls while it reads the command line: a seed out of range, a count below one, a share
outside [0, 1), a NaN is a usage error (one line, exit 2) before the command's body runs, so
before any file, store or server is made. The core checks behind them (``check_seeds``,
``TrainConfig``) stay, for the flows and the Python API.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from pngnn.core.config import DATASETS, MAX_SEED, MAX_TRAIN_SEED
from pngnn.core.settings import LLMSettings


def _whole(value: str | int) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a whole number") from None


def _real(value: str | float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise typer.BadParameter(f"{value} is not a finite number")
    return number


def split_seed(value: str | int) -> int:
    """A split seed: stored as a DuckDB INTEGER, so 0 to 2**31 - 1."""
    seed = _whole(value)
    if not 0 <= seed <= MAX_SEED:
        raise typer.BadParameter(f"split seed {seed} is out of range; use a seed from 0 to {MAX_SEED}")
    return seed


def random_seed(value: str | int) -> int:
    """A random generator's seed (a sample's, a sampler's): what NumPy and Optuna take."""
    seed = _whole(value)
    if not 0 <= seed <= MAX_TRAIN_SEED:
        raise typer.BadParameter(f"seed {seed} is out of range; use a seed from 0 to {MAX_TRAIN_SEED}")
    return seed


def count(value: str | int) -> int:
    """How many of something (epochs, trials, items, users per holdout): one or more."""
    n = _whole(value)
    if n < 1:
        raise typer.BadParameter(f"{n} is not a count; use 1 or more")
    return n


def count_or_zero(value: str | int) -> int:
    """A count where 0 has a meaning the option's help gives (all users, never)."""
    n = _whole(value)
    if n < 0:
        raise typer.BadParameter(f"{n} is negative; use 0 or more")
    return n


def share(value: str | float) -> float:
    """A share of something: 0 <= x < 1."""
    x = _real(value)
    if not 0 <= x < 1:
        raise typer.BadParameter(f"{x} is not a share; use a number from 0 up to (not including) 1")
    return x


def real(value: str | float) -> float:
    """Any finite number (a threshold, a coefficient: their own ranges are checked where they are used)."""
    return _real(value)


def seconds(value: str | float) -> float:
    """A time budget: a finite number of seconds above zero."""
    x = _real(value)
    if x <= 0:
        raise typer.BadParameter(f"{x} is not a time budget; use seconds above 0")
    return x


def llm_option(field: str) -> Any:
    """The option that sets ``LLMSettings.<field>``: the field's own description (one text for the
    setting and its flags), then where the default comes from: PNGNN_LLM_<FIELD>, else the
    field's (one default for every command)."""
    info = LLMSettings.model_fields[field]
    fallback = info.default
    return typer.Option(help=f"{info.description} Default: PNGNN_LLM_{field.upper()}"
                             + (f", else {fallback}." if fallback is not None else "."), show_default=False)


_NAMES = ", ".join(DATASETS) + " or your own dataset (`pngnn ingest --name`)"

DatasetArg = Annotated[str, typer.Argument(help=_NAMES)]
Dataset = Annotated[str, typer.Option(help=_NAMES)]
ProfileDataset = Annotated[str | None, typer.Option(help=f"{_NAMES}; default: the profile's.")]
ProfileName = Annotated[str, typer.Option(help="quick (ML-100K, minutes), paper (ML-1M, hours) or a tuned profile "
                                               "(`pngnn tune --save-as`)")]
Seeds = Annotated[list[int], typer.Option("--seed", parser=split_seed, help="Split seed(s), repeatable.")]
ProfileSeeds = Annotated[list[int] | None, typer.Option("--seed", parser=split_seed,
                                                        help="Split seed(s), repeatable; default: the profile's.")]
SplitSeed = Annotated[int, typer.Option("--seed", parser=split_seed, help="The split seed.")]
Epochs = Annotated[int | None, typer.Option(parser=count, help="Graph models: epochs to train; default: the "
                                                               "profile's.")]
ResultsDir = Annotated[Path, typer.Option(help="The results folder: runs in <dir>/<dataset>/<method>[-<tag>]/ (tuned "
                                               "ones: <method>-tuned[-<profile>]/), LLM counts in "
                                               "<dir>/augmentation/<dataset>/<model>/.")]
Force = Annotated[bool, typer.Option(help="Replace a results file of another commit or other settings.")]
SplitProtocolOption = Annotated[str | None, typer.Option(
    "--split", help="How ratings are split: random (the paper's 80/20, the default), temporal (one global time "
                    "cutoff: test is the latest --test-fraction) or last (each user's last --last-n by time).")]
LastN = Annotated[int | None, typer.Option(parser=count, help="--split last: interactions per user held out for "
                                                              "test (and as many for validation); default 1.")]
Download = Annotated[bool, typer.Option("--download/--no-download", help="Download missing MovieLens files; "
                                        "--no-download: fail, naming the file and PNGNN_DATA_DIR.")]
LLMBaseURL = Annotated[str | None, llm_option("base_url")]
LLMModel = Annotated[str | None, llm_option("model")]
Device = Annotated[str | None, typer.Option(help="Where graph models train and score: auto (a GPU when torch "
                                              "sees one), cpu, cuda or cuda:N; default: PNGNN_DEVICE, else auto.",
                                              show_default=False)]
SetSettings = Annotated[list[str] | None, typer.Option("--set", help="A training setting over the profile's, "
                                                       "KEY=VALUE (repeatable), e.g. --set dim=128.",
                                                       show_default=False)]
