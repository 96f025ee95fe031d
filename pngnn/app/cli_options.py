"""The options several commands share (``pngnn.app.cli``'s and ``flows.cli``'s ``run``), declared once.

One declaration per option means one help text and one default: ``--seed`` or ``--dataset``
cannot say one thing on ``train`` and another on ``run``. Typer names each option after the
parameter that carries the type, so ``base_url: LLMBaseURL`` is ``--base-url`` and
``llm_base_url: LLMBaseURL`` is ``--llm-base-url``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pngnn.core.config import DATASETS
from pngnn.core.settings import LLMSettings


def llm_option(field: str, default: object = None) -> Any:
    """The option that sets ``LLMSettings.<field>``: the field's own description (one text for the
    setting and its flags), then where the default comes from: PNGNN_LLM_<FIELD>, else ``default``
    (the command's own, e.g. how many users it asks), else the field's."""
    info = LLMSettings.model_fields[field]
    fallback = default if default is not None else info.default
    return typer.Option(help=f"{info.description} Default: PNGNN_LLM_{field.upper()}"
                             + (f", else {fallback}." if fallback is not None else "."), show_default=False)


_NAMES = ", ".join(DATASETS) + " or your own dataset (`pngnn ingest --name`)"

DatasetArg = Annotated[str, typer.Argument(help=_NAMES)]
Dataset = Annotated[str, typer.Option(help=_NAMES)]
ProfileDataset = Annotated[str | None, typer.Option(help=f"{_NAMES}; default: the profile's.")]
ProfileName = Annotated[str, typer.Option(help="quick (ML-100K, minutes), paper (ML-1M, hours) or a tuned profile "
                                               "(`pngnn tune --save-as`)")]
Seeds = Annotated[list[int], typer.Option("--seed", help="Split seed(s), repeatable.")]
ProfileSeeds = Annotated[list[int] | None, typer.Option("--seed", help="Split seed(s), repeatable; default: the "
                                                                       "profile's.")]
Epochs = Annotated[int | None, typer.Option(help="Graph models: epochs to train; default: the profile's.")]
ResultsDir = Annotated[Path, typer.Option(help="The results folder: runs in <dir>/<dataset>/<method>[-<tag>]/ (tuned "
                                               "ones: <method>-tuned[-<profile>]/), LLM counts in "
                                               "<dir>/augmentation/<dataset>/<model>/.")]
Force = Annotated[bool, typer.Option(help="Replace a results file of another commit or other settings.")]
SplitProtocolOption = Annotated[str | None, typer.Option(
    "--split", help="How ratings are split: random (the paper's 80/20, the default), temporal (one global time "
                    "cutoff: test is the latest --test-fraction) or last (each user's last --last-n by time).")]
LastN = Annotated[int | None, typer.Option(help="--split last: interactions per user held out for test (and as "
                                                "many for validation); default 1.")]
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
