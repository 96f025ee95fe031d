"""Results as JSON files in a committed folder, one per (dataset, method, split seed).

Long runs can go in the background and a session can end between runs: the table is
rebuilt from whatever files exist (``pngnn report``).
"""

from __future__ import annotations

import errno
import json
import os
import platform
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pngnn.core.constants import DEFAULT_RANKER, KS, TABLE_METRICS
from pngnn.core.errors import PngnnError
from pngnn.core.provenance import git_commit
from pngnn.evaluation.metrics import aggregate
from pngnn.evaluation.report import segment_keys, segments_frame
from pngnn.evaluation.tables import PAPER, to_markdown


def result_path(results_dir: Path, dataset: str, method: str, seed: int, tag: str = "") -> Path:
    suffix = f"-{tag}" if tag else ""
    return results_dir / dataset / f"{method}{suffix}" / f"seed{seed}.json"


def write_result(results_dir: Path, record: dict[str, Any], tag: str = "", force: bool = False) -> Path:
    """Write one run's record; ``force``: replace whatever is there (see ``check_replaceable``)."""
    record = {**record, "commit": git_commit(), "machine": f"{platform.machine()} {platform.node()}",
              "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = result_path(results_dir, record["dataset"], record["method"], record["seed"], tag)
    check_replaceable(path, record.get("config"), force)
    return write_json_atomic(path, record)


def per_user_path(record_path: Path) -> Path:
    """The per-user metrics beside a run's record: ``seedN.json`` -> ``seedN.users.parquet``."""
    return record_path.with_suffix(".users.parquet")


def write_per_user(record_path: Path, frame: pl.DataFrame | None) -> Path | None:
    """Each evaluated user's metrics beside the record (what ``paired_tests`` compares), written
    whole or not at all."""
    if frame is None or frame.is_empty():
        return None
    path = per_user_path(record_path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.write_parquet(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except pl.exceptions.ComputeError as exc:  # Polars reports a full disk as a compute error
        if "os error 28" not in str(exc) and "No space left" not in str(exc):
            raise
        raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def check_replaceable(path: Path, config: Mapping[str, Any] | None = None, force: bool = False) -> None:
    """A result file is replaced only by a rerun of the same thing: the same commit and (when
    given) the same settings. Anything else, such as a short debug run over a committed
    result, needs ``force``. Called before training too, so a refusal costs no work."""
    if force or not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return  # half a file from an old writer: nothing worth keeping
    other_commit = old.get("commit") != git_commit()
    other_settings = config is not None and old.get("config") != json.loads(json.dumps(dict(config), default=str))
    if other_commit or other_settings:
        why = f"commit {old.get('commit')}" + (" with other settings" if other_settings else "")
        raise PngnnError(f"{path} holds a run of {why}; pass --force to replace it, or write elsewhere with "
                         "--results-dir or --tag")


def write_json_atomic(path: Path, record: dict[str, Any]) -> Path:
    """Write via a temporary file of its own and rename: a crash never leaves half a result,
    and two writers never share a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(record, indent=2, sort_keys=True, default=str))
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a results file is for everyone to read
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def augmentation_path(results_dir: Path, dataset: str, model: str, seed: int, ranker: str | None = None) -> Path:
    """Where one split's augmentation record lives: a folder per LLM, and per candidate ranker when
    the run named another profile than the default one (``<model>-<profile>-ranker``), so a rerun
    with the paper's candidate LightGCN sits beside the default's record instead of replacing it."""
    folder = model.replace("/", "_") + (f"-{ranker}-ranker" if ranker and ranker != DEFAULT_RANKER else "")
    return results_dir / "augmentation" / dataset / folder / f"seed{seed}.json"


def write_augmentation(results_dir: Path, record: dict[str, Any], force: bool = False) -> Path:
    """One split's LLM augmentation (counts, edge precision and base rates) as JSON, under
    ``augmentation/`` so the results table never mistakes it for a method."""
    path = augmentation_path(results_dir, record["dataset"], str(record.get("model", "llm")), record["seed"],
                             record.get("candidates_profile"))
    check_replaceable(path, force=force)
    return write_json_atomic(path, {**record, "commit": git_commit(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


def load_results(results_dir: Path, dataset: str) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by method folder name (method plus tag)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((results_dir / dataset).glob("*/seed*.json")):
        out.setdefault(path.parent.name, []).append(json.loads(path.read_text()))
    return out


def results_table(results_dir: Path, dataset: str, ks=KS, with_paper: bool = True) -> pl.DataFrame:
    """Mean ± std over splits of P@K and R@K per method, next to the paper's numbers."""
    return records_table(load_results(results_dir, dataset), ks, with_paper)


def records_table(runs: Mapping[str, list[dict[str, Any]]], ks=KS, with_paper: bool = True) -> pl.DataFrame:
    """Mean ± std over splits of P@K and R@K per method of ``runs`` (method -> records with
    ``metrics``), with the paper's row after each method the paper has."""
    rows = []
    for method, records in runs.items():
        agg = aggregate([r["metrics"] for r in records])
        row: dict[str, Any] = {"method": method, "splits": len(records)}
        for k in ks:
            for m in TABLE_METRICS:
                mean, std = agg[f"{m}@{k}"]
                # One split has no spread to show: a '± 0' would read as a measured zero.
                row[f"{m[0].upper()}@{k}"] = f"{mean:.4f} ± {std:.4f}" if len(records) > 1 else f"{mean:.4f}"
        rows.append(row)
        if with_paper and method in PAPER:
            paper = {"method": f"{method} (paper)", "splits": 3}
            for k in ks:
                for m in TABLE_METRICS:
                    v = PAPER[method].get(f"{m}@{k}")
                    paper[f"{m[0].upper()}@{k}"] = f"{v:.4f}" if v is not None else "-"
            rows.append(paper)
    return pl.DataFrame(rows)


def segments_table(results_dir: Path, dataset: str, metric: str = "recall@20") -> pl.DataFrame:
    """``metric`` by segment (users by train activity, q1 = sparsest; the sparsest 10%; recall on
    long-tail items), mean ± std over splits, for every method whose records all carry segments."""
    frame = segments_runs_frame(results_dir, dataset, metric)
    keys = segment_keys(metric)
    return pl.DataFrame([{"method": r["method"], "splits": r["splits"],
                          **{k: f"{r[f'{k}_mean']:.4f}" + (f" ± {r[f'{k}_std']:.4f}" if r["splits"] > 1 else "")
                             for k in keys}} for r in frame.iter_rows(named=True)])


def segments_runs_frame(results_dir: Path, dataset: str, metric: str = "recall@20") -> pl.DataFrame:
    """``pngnn.evaluation.report.segments_frame`` of the results JSON of ``dataset``; an error naming the fix
    when no method's records carry segments."""
    runs = {method: [r["metrics"] for r in records] for method, records in load_results(results_dir, dataset).items()}
    frame = segments_frame(runs, metric)
    if not frame.height:
        raise PngnnError(f"no {dataset} results with segment metrics in {results_dir}; runs made since segments "
                         "exist carry them (`pngnn train`)")
    return frame


def paired_differences(results_dir: Path, dataset: str, method: str, baseline: str, ks=KS) -> pl.DataFrame:
    """``method`` minus ``baseline`` on the split seeds both have: the mean difference of each
    P@K and R@K column and the smallest one (positive smallest: ahead on every split)."""
    runs = load_results(results_dir, dataset)
    for name in (method, baseline):
        if name not in runs:
            raise PngnnError(f"no results for '{name}' in {results_dir / dataset}; choose one of {sorted(runs)}")
    ours = {r["seed"]: r["metrics"] for r in runs[method]}
    theirs = {r["seed"]: r["metrics"] for r in runs[baseline]}
    seeds = sorted(set(ours) & set(theirs))
    if not seeds:
        raise PngnnError(f"'{method}' and '{baseline}' share no split seed in {results_dir / dataset}; run both on "
                         "the same --seed")
    rows = []
    for k in ks:
        for m in TABLE_METRICS:
            diffs = np.array([ours[s][f"{m}@{k}"] - theirs[s][f"{m}@{k}"] for s in seeds])
            rows.append({"metric": f"{m[0].upper()}@{k}", "mean difference": f"{diffs.mean():+.4f}",
                         "smallest": f"{diffs.min():+.4f}", "splits": len(seeds)})
    return pl.DataFrame(rows)


def augmentation_table(results_dir: Path, dataset: str) -> pl.DataFrame:
    """One row per (LLM, split) from ``pngnn augment``'s JSON: users asked, usable answers,
    edges, and how often 'like'/'dislike' hit a held-out like/dislike next to the base
    rate of the candidates the LLM chose from (lift > 1: better than picking at random), and the
    profile of the LightGCN that ranked those candidates."""
    rows = []
    for path in sorted((results_dir / "augmentation" / dataset).glob("*/seed*.json")):
        r = json.loads(path.read_text())
        row: dict[str, Any] = {"llm": r.get("model", path.parent.name),
                               "ranker": r.get("candidates_profile") or DEFAULT_RANKER, "split": r["seed"],
                               "users": r.get("users"), "answers": r.get("answers", r.get("ok")),
                               "+edges": r.get("positive_edges"), "-edges": r.get("negative_edges")}
        for kind in ("like", "dislike"):
            for field in ("precision", "base_rate", "lift"):
                v = r.get(f"{kind}_{field}")
                row[f"{kind} {field.replace('_', ' ')}"] = f"{v:.3f}" if isinstance(v, float) else "-"
        rows.append(row)
    return pl.DataFrame(rows)


def summary_table(summary: Mapping[str, Mapping[str, float]]) -> pl.DataFrame:
    """A flow's summary (``method/metric`` -> mean, std over splits) as one row per method with
    the mean of every P/R/NDCG@K column."""
    rows: dict[str, dict[str, str]] = {}
    for key, value in summary.items():
        method, name = key.split("/", 1)
        if name.startswith(("precision", "recall", "ndcg")):
            rows.setdefault(method, {"method": method})[name] = f"{value['mean']:.4f}"
    return pl.DataFrame(list(rows.values()))


def results_report(results_dir: Path, dataset: str) -> str:
    """``pngnn report``'s text from the results JSON: the table next to the paper's and the LLM
    edges' hit rates (``--compare``: ``pngnn.evaluation.significance.compare_report``)."""
    table = results_table(results_dir, dataset)
    if table.is_empty():
        raise PngnnError(f"no results for {dataset} in {results_dir}; run `pngnn train` first")
    edges = augmentation_table(results_dir, dataset)
    if edges.is_empty():
        return to_markdown(table)
    return "\n".join([to_markdown(table), "\nLLM edges (held-out hit rate of 'like'/'dislike' vs the candidates' "
                      "base rate):\n", to_markdown(edges)])
