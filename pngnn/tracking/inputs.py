"""What a model was trained from, as one digest: the split (dataset checksum, seed, fractions,
protocol), the LLM edges it was given, the method and its settings. Two trainings with the same
digest make the same model (training is seeded), so a scheduled retrain whose digest equals the
latest registered version's registers nothing: a registry that grows a version a week with
identical models hides the versions that matter.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pngnn.core.settings import Settings
from pngnn.data.lineage import split_fields
from pngnn.data.split import SplitData
from pngnn.tracking.registry import client, latest_version, model_name

INPUTS_TAG = "inputs_digest"


def inputs_digest(split: SplitData, method: str, config: Mapping[str, Any]) -> str:
    """16 hex characters over everything a training reads."""
    fields = {"split": split_fields(split), "edges": split.augmented_digest(), "method": method,
              "config": dict(config)}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def latest_inputs(settings: Settings, dataset: str, method: str) -> tuple[str | None, str | None]:
    """(version, inputs digest) of the latest registered version of the model (None, None without one;
    a digest of None when that version's run did not record it)."""
    mlf = client(settings)
    latest = latest_version(mlf, model_name(dataset, method))
    if latest is None:
        return None, None
    return str(latest.version), mlf.get_run(latest.run_id).data.tags.get(INPUTS_TAG)
