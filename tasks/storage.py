"""Where the mapped tasks' results go (``PNGNN_RESULT_STORAGE``).

Why it matters: a mapped task's return value (a chunk's LLM answers, a training's metrics) is
persisted where the flow's process can read it back, whichever worker ran it; on a cluster of
machines that must be storage they all reach. Unset: ``prefect-results/`` beside the DuckDB
file (one machine, or a local Dask cluster). A value with a URL scheme is an fsspec location
(``s3://bucket/prefix``, ``gcs://...``, ``file:///srv/results``); ``<block-type>/<name>`` (e.g.
``s3-bucket/pngnn-results``) names a Prefect storage block saved on the server; anything else
is a folder. Prefect takes only storage saved on its server for a task (a worker loads it from
there), so a folder or URL is saved as a block named after it (``pngnn-results-<hash>``) and
passed by its slug. A task persists its result only under a cache key, so the mapped tasks key
theirs by task run (``per_run_key``): every run is stored under its own key and none is ever
taken from the cache.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prefect.filesystems import LocalFileSystem, RemoteFileSystem, WritableFileSystem

from pngnn.core.settings import Settings

_BLOCK_SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)+/[A-Za-z0-9_-]+")  # Prefect block type slugs have a dash


def result_storage(settings: Settings) -> str:
    """The slug (``<block-type>/<name>``) of the storage of ``settings.result_storage``, a folder
    or an fsspec URL saved as a block first."""
    value = settings.result_storage
    if value is not None and _BLOCK_SLUG.fullmatch(value) and not Path(value).exists():
        return value
    block: WritableFileSystem
    if value is None:
        block = LocalFileSystem(basepath=str((settings.db_path.parent / "prefect-results").resolve()))
    elif "://" in value and urlsplit(value).scheme != "file":
        block = RemoteFileSystem(basepath=value)
    else:
        path = urlsplit(value).path if "://" in value else value
        block = LocalFileSystem(basepath=str(Path(path).expanduser().resolve()))
    where = str(getattr(block, "basepath", value))
    name = f"pngnn-results-{hashlib.sha256(where.encode()).hexdigest()[:12]}"
    block.save(name, overwrite=True)
    return f"{block.get_block_type_slug()}/{name}"


def per_run_key(context: Any, parameters: dict[str, Any]) -> str:
    """A task's ``cache_key_fn``: its own run's id, so its result is persisted (a task without a
    cache key is not) and no other run reuses it; the inputs (a split, a chunk) are not hashed."""
    del parameters
    return f"{context.task.name}-{context.task_run.id}"
