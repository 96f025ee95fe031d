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

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


class ProfileFile(BaseModel):
    """The fields of a saved profile, typed: a file that parses but is not a profile (a list, a
    missing key, a seed that is not a number) is one line naming the field, not a traceback."""

    model_config = ConfigDict(extra="allow")  # the tuning record, creation time, commit: kept, not checked

    format: int
    name: str
    dataset: str
    seeds: list[int] = Field(min_length=1)
    train: dict[str, Any]
    test_fraction: float
    valid_fraction: float
    method: str | None = None
    split_protocol: str = "random"
    last_n: int = 1
    per_seed: dict[int, dict[str, Any]] = {}


def load_saved_profile(path: Path) -> Profile:
    fix = "fix the file, or delete it and re-run `pngnn tune --save-as` to make it again"
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise PngnnError(f"cannot read profile {path}: {exc.strerror or exc}", fix) from None
    except UnicodeDecodeError:
        raise PngnnError(f"profile {path} is not UTF-8 text", fix) from None
    except json.JSONDecodeError as exc:
        raise PngnnError(f"profile {path} is not JSON ({exc.msg} at line {exc.lineno})", fix) from None
    if not isinstance(doc, dict):
        raise PngnnError(f"profile {path} is not a profile: it holds a JSON {type(doc).__name__}, not an object", fix)
    if doc.get("format") not in (None, FORMAT_VERSION):
        raise PngnnError(f"profile {path} has format {doc.get('format')!r}, this pngnn reads format "
                         f"{FORMAT_VERSION}; re-run `pngnn tune` to make it again")
    try:
        checked = ProfileFile.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the file"
        raise PngnnError(f"profile {path} is not a profile: {where}: {first['msg']} "
                         f"({len(exc.errors())} problem(s))", fix) from None
    per_seed = {seed: _config(values, path) for seed, values in checked.per_seed.items()}
    return Profile(name=checked.name, dataset=checked.dataset, seeds=tuple(checked.seeds),
                   train=_config(checked.train, path), test_fraction=checked.test_fraction,
                   split_protocol=checked.split_protocol, last_n=checked.last_n,  # type: ignore[arg-type]
                   valid_fraction=checked.valid_fraction, method=checked.method, per_seed=per_seed)


def get_profile(name: str, settings: Settings | None = None) -> Profile:
    """A built-in profile, else a tuned one saved under ``settings.profiles_dir``."""
    if name in PROFILES:
        return PROFILES[name]
    settings = settings or Settings()
    check_profile_name(name, "--profile")  # a name, never a path: ../elsewhere/x is refused
    path = settings.profiles_dir / f"{name}.json"
    if path.is_file():
        return load_saved_profile(path)
    known = sorted(PROFILES) + saved_profile_names(settings.profiles_dir)
    raise PngnnError(f"unknown profile '{name}'; choose one of {known} (tuned profiles are read from "
                     f"{settings.profiles_dir}, set PNGNN_PROFILES_DIR)")


def new_profile_name(method: str, dataset: str) -> str:
    """A fresh name for a study saved without ``--save-as``: method, dataset and UTC time (versions sort by name)."""
    return f"{method}-{dataset}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"


MAX_PROFILE_NAME = 100  # a file name, with room for .json under every file system's 255


def check_profile_name(name: str, flag: str = "--save-as") -> str:
    """A profile name: letters, digits, '-', '_' and '.', not starting with '.', at most 100 characters."""
    shown = name if len(name) <= 40 else f"{name[:40]}... ({len(name)} characters)"
    if not name or name.startswith(".") or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise PngnnError(f"{flag} '{shown}' is not a profile name", "use letters, digits, '-', '_' and '.' (not "
                                                                    "first), e.g. pn-ease-ml-1m")
    if len(name) > MAX_PROFILE_NAME:
        raise PngnnError(f"{flag} '{shown}' is too long", f"use at most {MAX_PROFILE_NAME} characters")
    return name


def check_new_name(name: str, directory: Path) -> Path:
    """The path a new profile ``name`` would take; an error if the name is taken."""
    check_profile_name(name)
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
