"""Cache policies for the deterministic, expensive steps (ingest, split, later pretrain).

A re-run of a flow with the same inputs skips these steps (their task runs end in the
``Cached`` state) only while the DuckDB file still holds what the cached run wrote. A key
is the hash of:

* the task's inputs and source code (Prefect's ``INPUTS`` and ``TASK_SOURCE``);
* the resolved DuckDB path (``PNGNN_DB``): another file is another cache;
* the file's identity: a random id stored in the file itself (``pngnn/sql/store_identity.sql``).
  It is created with the file and dies with it, so a deleted or replaced DuckDB file
  changes every key and the steps run again. (Keying on "is the dataset there?" would
  not work: the run that ingests sees "absent", the next one "present", so the second
  run could never hit the cache, and a deleted file would hit the first run's key.)
* a dataset checksum: for ingest the checksum the MovieLens files must have
  (``pngnn/SHA256SUMS``), so new data files mean a new ingest; for split and pretrain
  the checksum the file holds, so a re-ingest of other data redraws the splits.

If the file cannot be opened (locked by another process), no key is computed: the task
simply runs, uncached. Nothing here imports torch or trains anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects

from pngnn.datasets import expected_checksum
from pngnn.settings import Settings
from pngnn.store import Store


def store_state(dataset: str | None) -> dict[str, Any]:
    """The DuckDB file's path, identity and (if ingested) the dataset's stored checksum."""
    settings = Settings.from_env()
    path = os.path.realpath(settings.db_path)
    with Store(settings.db_path) as store:
        identity = store.identity()
        stored = None
        if dataset is not None:
            stored = store.scalar("SELECT checksum FROM datasets WHERE dataset = $dataset", dataset=dataset)
    return {"path": path, "identity": identity, "stored_checksum": stored}


@dataclass
class DuckDBState(CachePolicy):
    """Key on the DuckDB file (path + identity) and a dataset checksum.

    ``checksum``: ``"expected"`` (ingest: the checksum the files must have) or
    ``"stored"`` (steps after ingest: the checksum the file holds now). The dataset is
    the task's ``dataset`` input.
    """

    checksum: Literal["expected", "stored"] = "stored"

    def compute_key(
        self,
        task_ctx: TaskRunContext | None,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        dataset = inputs.get("dataset")
        state = store_state(dataset)
        digest = expected_checksum(dataset) if self.checksum == "expected" else state["stored_checksum"]
        return hash_objects(state["path"], state["identity"], self.checksum, digest, raise_on_failure=True)


# Task inputs + task code + the DuckDB file it writes to.
INGEST_CACHE = INPUTS + TASK_SOURCE + DuckDBState(checksum="expected")
SPLIT_CACHE = INPUTS + TASK_SOURCE + DuckDBState(checksum="stored")
# The LightGCN pretrain task (LLM candidates): the same rule as split.
PRETRAIN_CACHE = SPLIT_CACHE
