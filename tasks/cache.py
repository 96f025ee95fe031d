"""Cache policies for the deterministic, expensive steps (ingest, split, pretrain).

A rerun with the same inputs skips them (``Cached``) only while the DuckDB file still holds
what the cached run wrote: the key hashes the task's inputs and source, the resolved
``PNGNN_DB`` path, the file's identity (a random id stored in the file, ``store_identity.sql``:
a deleted or replaced file changes every key; keying on "is the dataset there?" could never
hit, since the ingesting run sees "absent" and the next "present") and a dataset checksum
(ingest: the one the MovieLens files must have; later steps: the one the file holds, so a
re-ingest of other data redraws the splits). A file locked by another process gives no key:
the task runs, uncached.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy, Inputs
from prefect.context import TaskRunContext
from prefect.utilities.hashing import hash_objects

from pngnn.core.settings import Settings
from pngnn.data.datasets import expected_checksum
from pngnn.data.store import Store


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
        dataset = inputs["dataset"]
        settings = Settings.from_env()
        with Store(settings.db_path) as store:
            identity, stored = store.identity(), store.dataset_checksum(dataset)
        # a user's own dataset has no files to expect: what the file holds (it changes with --append)
        digest = (expected_checksum(dataset) if self.checksum == "expected" else None) or stored
        return hash_objects(os.path.realpath(settings.db_path), identity, self.checksum, digest,
                            raise_on_failure=True)


# Task inputs + task code + the DuckDB file it writes to.
INGEST_CACHE = INPUTS + TASK_SOURCE + DuckDBState(checksum="expected")
SPLIT_CACHE = INPUTS + TASK_SOURCE + DuckDBState(checksum="stored")
# The LightGCN pretrain task (LLM candidates): the same rule as split. Its ``split`` input (the split
# the flow loaded) is left out of the key: dataset, seed and the file's identity already name it.
PRETRAIN_CACHE = Inputs(exclude=["split"]) + TASK_SOURCE + DuckDBState(checksum="stored")
