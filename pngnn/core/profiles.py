"""Tuned profiles as versioned JSON files: what ``pngnn tune --save-as NAME`` chose, reusable by name.

A saved profile is immutable: saving under a name that exists is an error (a result made
with ``--profile NAME`` must stay reproducible), so a new study gets a new name. The file
records its format version, the method, the base profile, the full configuration per split
seed, and how it was tuned (metric, budget, best validation values, MLflow run, commit).
Its splits are the plain 80/20 ones (``valid_fraction`` 0): the tuned configuration trains
on train + validation and is evaluated once on test.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from pngnn.core.config import PROFILES, Profile, TrainConfig
from pngnn.core.errors import PngnnError
from pngnn.core.settings import Settings

FORMAT_VERSION = 1


def saved_profile_names(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []


def _config(values: Mapping[str, Any], path: Path) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - known
    if unknown:
        raise PngnnError(f"profile {path} has unknown training setting(s) {sorted(unknown)}; it was written by "
                         "another version of pngnn: re-run `pngnn tune` or edit the file")
    return TrainConfig(**values)


def load_saved_profile(path: Path) -> Profile:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PngnnError(f"cannot read profile {path}: {exc}; fix or delete the file") from None
    if doc.get("format") != FORMAT_VERSION:
        raise PngnnError(f"profile {path} has format {doc.get('format')!r}, this pngnn reads format "
                         f"{FORMAT_VERSION}; re-run `pngnn tune` to make it again")
    per_seed = {int(seed): _config(values, path) for seed, values in doc.get("per_seed", {}).items()}
    return Profile(name=doc["name"], dataset=doc["dataset"], seeds=tuple(doc["seeds"]),
                   train=_config(doc["train"], path), test_fraction=doc["test_fraction"],
                   split_protocol=doc.get("split_protocol", "random"), last_n=doc.get("last_n", 1),
                   valid_fraction=doc["valid_fraction"], method=doc["method"], per_seed=per_seed)


def get_profile(name: str, settings: Settings | None = None) -> Profile:
    """A built-in profile, else a tuned one saved under ``settings.profiles_dir``."""
    if name in PROFILES:
        return PROFILES[name]
    settings = settings or Settings()
    path = settings.profiles_dir / f"{name}.json"
    if path.is_file():
        return load_saved_profile(path)
    known = sorted(PROFILES) + saved_profile_names(settings.profiles_dir)
    raise PngnnError(f"unknown profile '{name}'; choose one of {known} (tuned profiles are read from "
                     f"{settings.profiles_dir}, set PNGNN_PROFILES_DIR)")


def new_profile_name(method: str, dataset: str) -> str:
    """A fresh name for a study saved without ``--save-as``: method, dataset and UTC time (versions sort by name)."""
    return f"{method}-{dataset}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"


def check_new_name(name: str, directory: Path) -> Path:
    """The path a new profile ``name`` would take; an error if the name is taken."""
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise PngnnError(f"profile name '{name}' must be letters, digits, '-', '_' or '.'; e.g. pn-ease-ml-1m")
    if name in PROFILES:
        raise PngnnError(f"profile '{name}' is built in; choose another --save-as name")
    path = directory / f"{name}.json"
    if path.exists():
        raise PngnnError(f"profile '{name}' exists already ({path}); choose another --save-as name, or delete the "
                         "file to replace it")
    return path


def save_profile(profile: Profile, directory: Path, tuning: Mapping[str, Any], base_profile: str) -> Path:
    """Write ``profile`` as ``<directory>/<name>.json`` (never over an existing file)."""
    from pngnn.core.provenance import git_commit

    path = check_new_name(profile.name, directory)
    doc = {
        "format": FORMAT_VERSION,
        "name": profile.name,
        "method": profile.method,
        "dataset": profile.dataset,
        "seeds": list(profile.seeds),
        "test_fraction": profile.test_fraction,
        "split_protocol": profile.split_protocol,
        "last_n": profile.last_n,
        "valid_fraction": profile.valid_fraction,
        "base_profile": base_profile,
        "train": profile.train.to_dict(),
        "per_seed": {str(seed): cfg.to_dict() for seed, cfg in profile.per_seed.items()},
        "tuning": dict(tuning),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": git_commit(),
    }
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".json.tmp{time.monotonic_ns()}")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    try:
        os.link(tmp, path)  # fails if another process saved the same name meanwhile
    except FileExistsError:
        raise PngnnError(f"profile '{profile.name}' was saved by another process meanwhile ({path}); "
                         "choose another --save-as name") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def method_profiles(methods: list[str], dataset: str, base: Profile, tuned: Mapping[str, str] | None,
                    settings: Settings) -> dict[str, Profile]:
    """The profile each method of a flow trains with: ``tuned[method]``, else a saved
    ``<method>-<dataset>``, else ``base``."""
    out = {}
    for method in methods:
        name = (tuned or {}).get(method)
        if name is None and (settings.profiles_dir / f"{method}-{dataset}.json").is_file():
            name = f"{method}-{dataset}"
        out[method] = get_profile(name, settings) if name else base
    return out
