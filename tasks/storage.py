"""Where the mapped tasks' results go (``PNGNN_RESULT_STORAGE``).

Why it matters: a mapped task's return value (a chunk's LLM answers, a training's metrics) is
persisted where the flow's process can read it back, whichever worker ran it; on a cluster of
machines that must be storage they all reach. Unset: ``prefect-results/`` beside the DuckDB
file (one machine, or a local Dask cluster). A value with a URL scheme is an fsspec location
(``s3://bucket/prefix``, ``gcs://...``, ``file:///srv/results``); ``<block-type>/<name>`` (e.g.
``s3-bucket/pngnn-results``) names a Prefect storage block saved on the server; anything else
is a folder. Prefect takes only storage saved on its server for a task (a worker loads it from
there), so a folder or URL is saved as a block named after it (``pngnn-results-<hash>``) and
passed by its slug.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

from prefect.filesystems import LocalFileSystem, RemoteFileSystem, WritableFileSystem

from pngnn.settings import Settings

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
