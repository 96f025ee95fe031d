"""Which data a tracked run trained on, as an MLflow dataset input (``mlflow.log_input``).

Two runs are only comparable when they saw the same ratings split the same way. MLflow shows
a run's dataset inputs in its Datasets column and in Compare, as ``name (digest)``; here

- the name is the dataset (``ml-100k``, ``ml-1m``),
- the digest is ``s<split seed>-`` and 8 hex digits of a hash over the dataset checksum, the
  seed and the split's fractions, so one digest means one split of one exact set of files
  (MLflow keeps one dataset record per name and digest in an experiment: a digest that
  missed any of them would show another split's source),
- the source is the GroupLens download URL with the checksum, the split seed and the fractions
  as its fragment (``...ml-1m.zip#checksum=<sha256>&split_seed=1&test_fraction=0.2&...``),
- the profile counts users, items and ratings per part,

with the input context ``training``. The checksum is the one the DuckDB file recorded at
ingestion (sha256 over the published SHA-256 sums of the dataset's files, ``pngnn/data/SHA256SUMS``),
the same value as a flow's ``dataset_checksum`` parameter. A run on LLM edges also tags its
input with how many edges and which (``llm_edges``, ``llm_edges_sha256``): the split is the same,
the training graph is not.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pngnn.data.datasets import GROUPLENS_URL
from pngnn.data.split import SplitData

if TYPE_CHECKING:
    from mlflow.data.meta_dataset import MetaDataset

TRAINING_CONTEXT = "training"


def split_fields(split: SplitData) -> dict[str, str]:
    """What identifies the split: the dataset checksum, the seed and the fractions (as stored)."""
    fields = {"checksum": split.checksum or "unknown", "split_seed": str(split.seed)}
    if split.fractions is not None:
        fields.update(test_fraction=f"{split.fractions[0]:g}", valid_fraction=f"{split.fractions[1]:g}")
    if split.protocol != "random":  # a split by time is another split; random ones keep their digests
        fields["split_protocol"] = split.protocol + (f"-{split.last_n}" if split.protocol == "last" else "")
    return fields


def split_digest(split: SplitData) -> str:
    """``s<seed>-<8 hex>``: readable seed, hashed checksum and fractions (MLflow stores 36 chars at most)."""
    fields = split_fields(split)
    return f"s{split.seed}-{hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]}"


def split_source_url(split: SplitData) -> str:
    """The files' download URL, with what identifies the split as its fragment."""
    return f"{GROUPLENS_URL.format(name=split.dataset)}#{urlencode(split_fields(split))}"


def split_profile(split: SplitData) -> dict[str, int]:
    return {"users": split.n_users, "items": split.n_items, "train_ratings": len(split.train),
            "valid_ratings": len(split.valid), "test_ratings": len(split.test)}


def split_dataset(split: SplitData) -> MetaDataset:
    """The split as an MLflow dataset of metadata only (the ratings stay in DuckDB)."""
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    class SplitDataset(MetaDataset):
        @property
        def profile(self) -> Any:
            return split_profile(split)

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    return SplitDataset(HTTPDatasetSource(split_source_url(split)), name=split.dataset, digest=split_digest(split))


def log_split_input(split: SplitData) -> None:
    """Record the split as the active run's training dataset (and its LLM edges, when it has some)."""
    import mlflow

    edges = {k: str(v) for k, v in split.augmented_digest().items()}
    mlflow.log_input(split_dataset(split), context=TRAINING_CONTEXT, tags=edges or None)
