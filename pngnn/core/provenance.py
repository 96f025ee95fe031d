"""Which code made a record: the git commit written into results JSON, profiles and what-if sweeps."""

from __future__ import annotations

import subprocess


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
