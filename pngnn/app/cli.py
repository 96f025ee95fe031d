"""The ``pngnn`` command line: each pipeline step, a training run, tuning, the report.

``pngnn run`` (the Prefect pipeline flow) is added by ``flows.cli``, the installed entry
point, so this library never imports Prefect. Every user-facing failure is a ``PngnnError``
and is printed as one line (no traceback) with exit code 2.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar, cast

import typer
import typer._click.exceptions as click_errors  # typer's own copy of click raises these
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from pngnn.app import cli_options as opt
from pngnn.core.config import DEFAULT_DATASET, SPLIT_SEEDS, merge_overrides, parse_overrides
from pngnn.core.constants import CHECKPOINT_EVERY, TUNE_METRIC, UserOrder
from pngnn.core.errors import PngnnError, UserError
from pngnn.core.profiles import get_profile
from pngnn.core.settings import Settings, llm_settings, quiet_environment


class OneLineUsageErrors(TyperGroup):
    """Click's usage errors (a value that is not a number, an unknown option) in the project's form:
    one line on stderr naming the problem and where to look, exit code 2; not a usage box."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except click_errors.NoArgsIsHelpError as exc:  # `pngnn` alone: the help, as before
            exc.show()
            sys.exit(exc.exit_code)
        except click_errors.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "pngnn"
            console.print(f"[bold red]error:[/] {escape(one_line(exc.format_message()))}; see `{where} --help`",
                          highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            console.print(f"[bold red]error:[/] {escape(one_line(exc.format_message()))}", highlight=False,
                          soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            console.print("aborted", highlight=False)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(help="LLM-augmented PN-GNN recommendations on MovieLens.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=OneLineUsageErrors)
console = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


def one_line(text: object) -> str:
    """``text`` for the terminal on one line: a value echoed back from the input (a newline, a
    Unicode line separator, a control character) is shown escaped, never as a break."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def free_space(path: str | None) -> str:
    """" (now N MB free of M MB)" for the disk that holds ``path`` (its nearest existing folder), once
    the failed write was rolled back: how much room there is to make; empty where the disk cannot
    be asked."""
    if not path:
        return ""
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        usage = shutil.disk_usage(where)
    except OSError:
        return ""
    return f" (now {usage.free / 2**20:,.1f} MB free of {usage.total / 2**20:,.0f} MB)"


def storage_error(exc: OSError) -> PngnnError:
    """A file that cannot be made or written (a path under a file, no permission, a full disk) in one
    line naming the path; what was written before stays whole (every writer writes atomically)."""
    where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    if exc.errno == errno.ENOSPC:
        return PngnnError(f"no space left on the device of {where}{free_space(exc.filename)}",
                          "free space there, or point the path (PNGNN_DB, MLFLOW_TRACKING_URI, --results-dir) at "
                          "another disk, and rerun: the work resumes")
    return PngnnError(f"cannot use {where}: {exc.strerror or exc}",
                      "check the path and its permissions (PNGNN_DB, MLFLOW_TRACKING_URI, PNGNN_DATA_DIR, "
                      "PNGNN_PROFILES_DIR, --results-dir)")


def command(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Register a function as ``pngnn <name>``; a PngnnError it raises, or a file it cannot make or
    write, is one line and exit code 2."""

    def register(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def friendly(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except PngnnError as exc:
                console.print(f"[bold red]error:[/] {escape(one_line(exc))}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            except OSError as exc:
                if exc.filename is None:  # not a file's fault: a bug or a network error, shown whole
                    raise
                console.print(f"[bold red]error:[/] {escape(one_line(storage_error(exc)))}", highlight=False,
                              soft_wrap=True)
                raise typer.Exit(2) from None

        app.command(name, help=unwrapped(inspect.getdoc(fn) or ""))(friendly)
        return friendly

    return register


def unwrapped(doc: str) -> str:
    """A docstring's paragraphs each on one line: typer keeps the source's line breaks, which rich then
    wraps again, so hard-wrapped prose came out ragged in ``--help``."""
    return "\n\n".join(" ".join(part.split()) for part in doc.split("\n\n"))


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log per-epoch details.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


@command("ingest")
def ingest_cmd(
    dataset: opt.DatasetArg = DEFAULT_DATASET,
    download: opt.Download = True,
    name: Annotated[str | None, typer.Option(help="Your own data: the dataset's name (lowercase letters, digits, "
                                                  "'-', '_'), used wherever a MovieLens name is.")] = None,
    ratings: Annotated[str | None, typer.Option(help="Your interactions: a CSV, TSV, Parquet or JSON Lines file, or "
                                                     "a DuckDB table as file.duckdb:table.")] = None,
    columns: Annotated[str | None, typer.Option(help="Which columns hold what: user=COL,item=COL[,rating=COL]"
                                                     "[,time=COL]; a key left out means the column of its name; no "
                                                     "rating: implicit data (every interaction a like).")] = None,
    items: Annotated[str | None, typer.Option(help="Your item catalogue (same formats): titles and descriptions "
                                                   "for the LLM step and the recommendations.")] = None,
    item_columns: Annotated[str | None, typer.Option(help="Catalogue columns: id=COL[,title=COL][,text=COL].")]
    = None,
    like_threshold: Annotated[float | None, typer.Option(parser=opt.real,
                                                         help="Ratings above it are likes; required unless the "
                                                              "ratings lie on MovieLens' 0.5-5 scale (then 3.5).")]
    = None,
    append: Annotated[bool, typer.Option(help="Add the file's interactions to the dataset --name: pairs it holds "
                                              "are skipped (a later time updates them); its splits are drawn "
                                              "again.")] = False,
) -> None:
    """Load MovieLens (verified, downloaded when missing) or your own interaction file into DuckDB.

    `pngnn ingest ml-1m` for MovieLens; `pngnn ingest --name shop --ratings log.parquet --columns
    user=customer_id,item=sku,rating=stars,time=ts --items catalog.csv --item-columns id=sku,title=name`
    for your data. The same data again is a no-op; other data under the same name replaces it."""
    from pngnn.data.prepare import append_user_data_step, ingest_step, ingest_user_data_step

    settings = Settings.from_env()
    if ratings is None:
        if name is not None or columns or items or item_columns or like_threshold is not None or append:
            raise UserError("--name, --columns, --items, --item-columns and --like-threshold describe your own data",
                            "give its file with --ratings FILE (or drop them to ingest MovieLens)")
        result = ingest_step(settings, dataset, allow_download=download)
    else:
        if name is None:
            raise UserError("--ratings needs --name", "name the dataset, e.g. --name shop")
        if append:
            if like_threshold is not None:
                raise UserError("--like-threshold is fixed at a dataset's first ingest", "drop it with --append")
            appended = append_user_data_step(settings, name, ratings, columns, items, item_columns)
            typer.echo(f"{appended.summary()} -> {settings.db_path}")
            return
        result = ingest_user_data_step(settings, name, ratings, columns, items, item_columns, like_threshold)
    typer.echo(f"{result.summary()} -> {settings.db_path}")


@command("datasets")
def datasets_cmd() -> None:
    """List the datasets in DuckDB: name, source, users, items, interactions, threshold, checksum, ingested at."""
    from pngnn.data.prepare import dataset_list
    from pngnn.evaluation.tables import to_markdown

    settings = Settings.from_env()
    frame = dataset_list(settings)
    typer.echo(to_markdown(frame) if frame.height else f"no datasets in {settings.db_path}; run `pngnn ingest`")


@command("doctor")
def doctor_cmd() -> None:
    """Read every table of the DuckDB file end to end: a damaged block is found now, in one line,
    not in the middle of a training (DuckDB checks a block's checksum only when it reads it)."""
    from pngnn.data.store import Store

    settings = Settings.from_env()
    if not settings.db_path.exists():
        raise PngnnError(f"no DuckDB file at {settings.db_path}", "run `pngnn ingest` first, or set PNGNN_DB")
    with Store(settings.db_path, read_only=True) as store:
        rows = store.verify()
    typer.echo(f"{settings.db_path}: {len(rows)} tables read end to end, {sum(rows.values()):,} rows, no damage")


@command("split")
def split_cmd(
    dataset: opt.DatasetArg = DEFAULT_DATASET,
    seed: opt.Seeds = list(SPLIT_SEEDS),  # noqa: B006
    test_fraction: Annotated[float, typer.Option(parser=opt.share,
                                                 help="Share of the ratings held out for test.")] = 0.2,
    valid_fraction: Annotated[float, typer.Option(parser=opt.share,
                                                  help="Share of train kept for early stopping.")] = 0.0,
    split: opt.SplitProtocolOption = None,
    last_n: opt.LastN = None,
) -> None:
    """Create train/test splits in DuckDB (deterministic per seed): random, or by time (--split).

    A split is named by its seed: asking for other fractions or another protocol under the same
    seed replaces the stored one (use another --seed to keep both)."""
    from pngnn.data.prepare import split_step
    from pngnn.data.protocols import check_protocol

    protocol = check_protocol(split or "random", last_n or 1)
    settings = Settings.from_env()
    for s in seed:  # opt.split_seed checked each while the command line was read
        counts = split_step(settings, dataset, s, test_fraction, valid_fraction, protocol, last_n or 1)
        typer.echo(f"{dataset} seed {s} ({protocol}): {counts}")


@command("train")
def train_cmd(
    method: Annotated[str | None, typer.Option(help="mostpop, lightgcn, pngnn, ease, edlae, gf-cf, pn-ease, "
                                                    "weighted-ease, ials, llm-lightgcn, llm-pngnn, llm-pn-ease or "
                                                    "llm-weighted-ease "
                                                    "(the llm- ones need `pngnn augment` first); default: "
                                                    "the tuned profile's method, else lightgcn")] = None,
    profile: opt.ProfileName = "quick",
    dataset: opt.ProfileDataset = None,
    seed: opt.ProfileSeeds = None,
    epochs: opt.Epochs = None,
    lightgcn_graph: Annotated[str | None, typer.Option(help="positive or all")] = None,
    dual_bpr: Annotated[str | None, typer.Option(help="PN-GNN loss: ordered, siren, sign, graded, weighted or "
                                                      "branch")] = None,
    b: Annotated[float | None, typer.Option(parser=opt.real, help="PN-GNN feedback-aware coefficient b")] = None,
    attention: Annotated[bool | None, typer.Option("--attention/--no-attention", help="PN-GNN fusion")] = None,
    pair_sampling: Annotated[str | None, typer.Option(help="edges (every pair once) or users (uniform user, "
                                                           "then one of their pairs)")] = None,
    ease_lambda: Annotated[float | None, typer.Option(parser=opt.real,
                                                      help="EASE / PN-EASE ridge penalty (> 0)")] = None,
    aug_mode: Annotated[str | None, typer.Option(help="llm- methods: graph (LLM edges in the graphs and the "
                                                      "training pairs) or triples (training pairs only)")] = None,
    results_dir: opt.ResultsDir = Path("results"),
    tag: Annotated[str, typer.Option(help="Suffix for the results folder (ablations).")] = "",
    track: Annotated[bool, typer.Option(help="Log the run to MLflow (MLFLOW_TRACKING_URI) and register its model "
                                             "as pngnn-<dataset>-<method>.")] = False,
    llm_model: Annotated[str | None, typer.Option(help="llm- methods: train on the edges this model merged; "
                                                     "default: PNGNN_LLM_MODEL, else the embedded model.")] = None,
    prompt_version: Annotated[str | None, typer.Option(help="llm- methods: the edges of this prompt version; "
                                                            "default: the current one.")] = None,
    force: opt.Force = False,
    checkpoint_every: Annotated[int, typer.Option(parser=opt.count_or_zero,
                                                  help="Graph models: every N epochs (0: never) save the training "
                                                       "state next to the results file (seedN.ckpt; with --track also "
                                                       "as a run artifact); it goes once the results file is written.")]
    = CHECKPOINT_EVERY,
    resume: Annotated[bool | None, typer.Option("--resume/--no-resume", help="Default: continue a seed from its "
                                                "checkpoint when it is of the very same run (dataset, method, split, "
                                                "every setting, LLM edges, commit), else start over; the result is "
                                                "the uninterrupted run's. --resume: an error where no such checkpoint "
                                                "is; --no-resume: always start over.")] = None,
    download: opt.Download = True,
    set_values: opt.SetSettings = None,
    device: opt.Device = None,
    split: opt.SplitProtocolOption = None,
    last_n: opt.LastN = None,
) -> None:
    """Ingest, split, train and evaluate one method on each split seed; write results JSON.

    A killed or interrupted run continues from its last checkpoint when the same command runs
    again (see --resume); with --track it ends KILLED in MLflow, and a run left RUNNING by a
    kill -9 is closed by the next start of the same run.
    """
    from pngnn.app.train_runs import TrainRequest, train_seeds

    overrides = merge_overrides(parse_overrides(set_values or []), {
        "epochs": epochs, "lightgcn_graph": lightgcn_graph, "dual_bpr": dual_bpr, "b": b, "attention": attention,
        "pair_sampling": pair_sampling, "aug_mode": aug_mode, "ease_lambda": ease_lambda})
    request = TrainRequest(profile, method, dataset, seed or [], overrides, results_dir, tag, track, llm_model,
                           prompt_version, force, checkpoint_every, resume, download, split, last_n)
    try:
        train_seeds(Settings.from_env(device), request, typer.echo, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@command("tune")
def tune_cmd(
    method: Annotated[str, typer.Option(help="ease, edlae, gf-cf, pn-ease, weighted-ease, ials, lightgcn, "
                                             "pngnn (or an llm- method)")],
    save_as: Annotated[str | None, typer.Option(help="Name of the tuned profile to save (must be new); default: "
                                                     "<method>-<dataset>-<UTC time>.")] = None,
    profile: Annotated[str, typer.Option(help="Base profile: dataset, seeds, fixed settings, max epochs.")] = "paper",
    dataset: opt.ProfileDataset = None,
    seed: opt.ProfileSeeds = None,
    trials: Annotated[int, typer.Option(parser=opt.count, help="Trials per split seed.")] = 20,
    timeout: Annotated[float | None, typer.Option(parser=opt.seconds,
                                                  help="Wall-time budget per split seed, seconds.")] = None,
    metric: Annotated[str, typer.Option(help="Validation metric to maximise.")] = TUNE_METRIC,
    valid_fraction: Annotated[float, typer.Option(parser=opt.share,
                                                  help="Share of train held out for validation.")] = 0.1,
    epochs: Annotated[int | None, typer.Option(parser=opt.count,
                                               help="Graph models: most epochs a trial trains.")] = None,
    sampler_seed: Annotated[int, typer.Option(parser=opt.random_seed, help="Seed of the TPE sampler.")] = 0,
    grid: Annotated[bool, typer.Option(help="Try every point of the method's grid (ease, gf-cf, "
                                            "weighted-ease, pn-ease, their llm- forms) instead of --trials TPE "
                                            "draws.")] = False,
    test: Annotated[bool, typer.Option("--test/--no-test", help="Then train on train + validation and evaluate "
                                                                 "once on test.")] = True,
    results_dir: opt.ResultsDir = Path("results"),
    set_values: opt.SetSettings = None,
    device: opt.Device = None,
) -> None:
    """Tune a method on validation only (Optuna TPE, pruning), save it as a profile, evaluate it once on test.

    Every trial is a child MLflow run of one parent run (MLFLOW_TRACKING_URI), which also holds each
    study's history and parallel-coordinates plots and the saved profile.
    """
    quiet_environment()
    from pngnn.app.tune import TuneRequest, tune_profile
    from pngnn.core.preflight import check_mlflow
    from pngnn.core.profiles import new_profile_name
    from pngnn.training.device import resolve_device

    settings = Settings.from_env(device)
    resolve_device(settings.device)
    save_as = save_as or new_profile_name(method, dataset or get_profile(profile, settings).dataset)
    request = TuneRequest.from_flat(method=method, save_as=save_as, base_profile=profile, dataset=dataset,
                                    seeds=seed or [], trials=trials, timeout_seconds=timeout,
                                    sampler_seed=sampler_seed, metric=metric, valid_fraction=valid_fraction,
                                    max_epochs=epochs, overrides=parse_overrides(set_values or []), grid=grid)
    check_mlflow(settings.mlflow_uri)
    tune_profile(settings, request, evaluate_on_test=test, results_dir=results_dir, echo=typer.echo,
                 progress=sys.stderr.isatty())


@command("augment")
def augment_cmd(
    dataset: opt.Dataset = DEFAULT_DATASET,
    seed: opt.Seeds = list(SPLIT_SEEDS),  # noqa: B006
    users: Annotated[int | None, opt.llm_option("users")] = None,
    users_by: Annotated[str | None, opt.llm_option("users_by")] = None,
    sample_seed: Annotated[int, typer.Option(parser=opt.random_seed,
                                             help="Seed of the random sample (the same users on every split) "
                                                  "and of the tie-break among equally sparse users.")] = 0,
    base_url: opt.LLMBaseURL = None,
    model: opt.LLMModel = None,
    concurrency: Annotated[int | None, opt.llm_option("concurrency")] = None,
    candidates_profile: Annotated[str | None, opt.llm_option("candidates_profile")] = None,
    self_consistency: Annotated[bool, typer.Option(help="Ask in two candidate orders; keep agreeing answers.")]
    = False,
    results_dir: opt.ResultsDir = Path("results"),
    force: opt.Force = False,
    retry_failed: Annotated[bool, opt.llm_option("retry_failed")] = False,
    max_failed_share: Annotated[float | None, opt.llm_option("max_failed_share")] = None,
    download: opt.Download = True,
) -> None:
    """Ask the LLM about some users of each split (the sparsest first) and merge its answers as edges.

    Cached and resumable: an interrupted run loses at most the requests in flight, and a
    rerun asks only what is not cached or failed for a passing reason (429, 5xx,
    timeout). Runs at the same time share the prompts: each is sent once. Then
    `pngnn train --method llm-pngnn` uses the edges.
    """
    from pngnn.augment.step import augment_seeds

    llm = llm_settings(users=users, users_by=users_by, base_url=base_url, model=model,
                       concurrency=concurrency, retry_failed=retry_failed or None,
                       max_failed_share=max_failed_share, candidates_profile=candidates_profile)
    augment_seeds(Settings.from_env(), dataset, seed, llm, results_dir, sample_seed=sample_seed,
                  self_consistency=self_consistency, force=force, download=download, progress=sys.stderr.isatty(),
                  echo=typer.echo)


@command("whatif")
def whatif_cmd(
    dataset: opt.Dataset = DEFAULT_DATASET,
    seed: opt.SplitSeed = 1,
    p: Annotated[list[float] | None, typer.Option("--p", parser=opt.real,
                                                  help="Accuracy of the simulated answerer, repeatable; "
                                                       "default 0, 0.25, 0.5, 0.75, 1.")] = None,
    users: Annotated[list[int] | None, typer.Option("--users", parser=opt.count_or_zero,
                                                    help="Users asked, repeatable; 0: all; default "
                                                         "600, 2000, 0.")] = None,
    users_by: Annotated[str, opt.llm_option("users_by")] = "sparsest",
    holdout: Annotated[float, typer.Option(parser=opt.share,
                                           help="Share of train the answerer knows (moved out of train).")] = 0.1,
    aug_mode: Annotated[str, typer.Option(help="How the edges enter LLM-PN-GNN: graph or triples.")] = "graph",
    dislikes: Annotated[bool, typer.Option("--dislikes/--no-dislikes", help="Train on the answerer's dislikes too, "
                                                                            "or on its likes only.")] = True,
    method: Annotated[str, typer.Option(help="The model without and with the edges: pngnn (PN-GNN against "
                                             "LLM-PN-GNN), pn-ease or weighted-ease (each against its llm- "
                                             "variant).")] = "pngnn",
    profile: opt.ProfileName = "quick",
    epochs: opt.Epochs = None,
    out: Annotated[Path | None, typer.Option(help="The sweep's JSON (and a .png beside it); default: "
                                                  "results/whatif/<dataset>/<users-by>-<aug-mode>[-likes]/seed<N>.json "
                                                  "(pn-ease, weighted-ease: .../<method>-<users-by>[-likes]/...)"
                                                  ".")]
    = None,
    device: opt.Device = None,
    baseline_only: Annotated[bool, typer.Option(help="Train only the base model (--method) on this split's what-if "
                                                     "train part: the split spread for a sweep run on another "
                                                     "split.")] = False,
) -> None:
    """What-if, not an LLM: the lift of LLM-PN-GNN over PN-GNN (or LLM-PN-EASE over PN-EASE) when the answers are
    right with probability p.

    A simulated answerer that knows a held-out share of train (never test) answers over the
    OpenAI-compatible API; everything else is the real augmentation and training. Runs on its
    own DuckDB file (beside PNGNN_DB) and resumes from the cells the JSON already holds.
    """
    from pngnn.app.whatif import WhatIfPlan, parse_user_counts, sweep_to_files

    settings = Settings.from_env(device)
    plan = WhatIfPlan(dataset, seed, tuple(p or (0.0, 0.25, 0.5, 0.75, 1.0)),
                      parse_user_counts(users or [600, 2000, 0]), holdout, cast(UserOrder, users_by), dislikes=dislikes,
                      method=method)
    cfg = get_profile(profile, settings).config_for(seed).with_overrides(epochs=epochs, aug_mode=aug_mode)
    sweep_to_files(settings, plan, cfg, out, echo=typer.echo, progress=sys.stderr.isatty(), baseline_only=baseline_only)


@command("report")
def report_cmd(
    dataset: opt.Dataset = DEFAULT_DATASET,
    results_dir: opt.ResultsDir = Path("results"),
    source: Annotated[str, typer.Option("--from", help="results (the JSON under --results-dir) or mlflow (the "
                                                        "tracking store at MLFLOW_TRACKING_URI)")] = "results",
    compare: Annotated[list[str] | None, typer.Option(help="METHOD:BASELINE results folders (e.g. "
                                                          "pn-ease-tuned:ease-tuned): same-split differences.")]
    = None,
    whatif: Annotated[bool, typer.Option(help="Print the what-if sweeps (`pngnn whatif`) instead: the lift by "
                                              "answerer accuracy, mean ± std over splits.")] = False,
    segments: Annotated[bool, typer.Option(help="Print recall@20 by segment (user activity, long-tail items) "
                                                "instead, for the runs that carry it.")] = False,
    plot: Annotated[Path | None, typer.Option(help="With --segments: also draw them as grouped bars (methods "
                                                   "per segment, std over splits) into this PNG.")] = None,
    price_per_million: Annotated[float | None, typer.Option(parser=opt.real, help="With --whatif: USD a million "
                                                            "tokens; adds each cell's cost and its cost per 0.001 "
                                                            "of recall@20 gained.")] = None,
    tokens_per_prompt: Annotated[float | None, typer.Option(parser=opt.real, help="With --price-per-million: "
                                                            "tokens a prompt and its answer cost; default: the "
                                                            "mean usage your LLM's server reported for this "
                                                            "dataset's prompts (PNGNN_DB's cache).")] = None,
) -> None:
    """Print the results table (mean ± std over splits) next to the paper's numbers."""
    if source not in ("results", "mlflow"):
        raise PngnnError(f"--from takes results or mlflow, got '{source}'")
    if plot is not None and not segments:
        raise PngnnError("--plot draws the segment table: add --segments")
    if (price_per_million is not None or tokens_per_prompt is not None) and not whatif:
        raise PngnnError("--price-per-million and --tokens-per-prompt price the what-if's cells: add --whatif")
    if tokens_per_prompt is not None and price_per_million is None:
        raise PngnnError("--tokens-per-prompt needs a price: add --price-per-million")
    if segments:
        from pngnn.evaluation.results import segments_table
        from pngnn.evaluation.tables import to_markdown

        typer.echo(to_markdown(segments_table(results_dir, dataset)))
        if plot is not None:
            from pngnn.evaluation.report import segments_chart
            from pngnn.evaluation.results import segments_runs_frame

            frame = segments_runs_frame(results_dir, dataset)
            try:
                plot.parent.mkdir(parents=True, exist_ok=True)
                typer.echo(f"-> {segments_chart(frame, plot, dataset)}")
            except OSError as exc:
                raise PngnnError(f"cannot write the chart to {plot} ({exc.strerror or exc}); pass a --plot path in "
                                 "a writable folder") from None
    elif whatif:
        from pngnn.app.whatif import sweeps_report, whatif_price

        price = None if price_per_million is None else whatif_price(Settings.from_env(), dataset, price_per_million,
                                                                   tokens_per_prompt, echo=typer.echo)
        typer.echo(sweeps_report(results_dir, dataset, price))
    elif source == "mlflow":
        from pngnn.tracking.runs import tracked_report

        typer.echo(tracked_report(Settings.from_env(), dataset))
    elif compare:
        from pngnn.evaluation.significance import compare_report

        typer.echo(compare_report(results_dir, dataset, compare))
    else:
        from pngnn.evaluation.results import results_report

        typer.echo(results_report(results_dir, dataset))


@command("recommend")
def recommend_cmd(
    user: Annotated[str, typer.Option("--user", help="The user's id: a MovieLens id, or your own id for your data.")],
    k: Annotated[int, typer.Option("--k", parser=opt.count, help="How many movies.")] = 10,
    dataset: opt.Dataset = DEFAULT_DATASET,
    method: Annotated[str | None, typer.Option(help="Registered method; default: the best one registered.")] = None,
) -> None:
    """Top-K unseen movies for a user from the registered model (alias production, else latest version)."""
    quiet_environment()
    from pngnn.tracking.recommend import recommend

    recs = recommend(Settings.from_env(), user, k, dataset, method)
    for line in recs.lines():
        typer.echo(line)


if __name__ == "__main__":
    app()
