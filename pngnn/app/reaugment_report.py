"""What one scheduled re-augmentation changed, as the Markdown its Prefect run publishes (key
``reaugment-<dataset>-<method>``) and the flow prints: new interactions, users asked against the
budget, edges, whether a model version was registered, and the holdout comparison with production.
Prefect-free so a test reads it directly."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _appended(appended: Mapping[str, Any] | None) -> str:
    if appended is None:
        return "no source configured (nothing appended)"
    return (f"{appended['added']} new, {appended['updated']} updated, {appended['present']} already present; "
            f"{appended['n_ratings']} in all")


def _asked(counts: Mapping[str, Any] | None) -> str:
    if counts is None:
        return "the method uses no LLM edges"
    return (f"{counts['asked_users']} asked (budget {counts['budget']}) of {counts['new_users']} new and "
            f"{counts['changed_users']} changed; {counts['unchanged_users']} unchanged keep their answers, "
            f"{counts['waiting_users']} wait for a later run")


def _edges(counts: Mapping[str, Any] | None) -> str:
    if counts is None:
        return "-"
    positive, negative = counts.get("positive_edges", 0), counts.get("negative_edges", 0)
    return f"{positive + negative} ({positive} positive, {negative} negative)"


def _model(model: Mapping[str, Any]) -> str:
    if not model["retrained"]:
        return f"not retrained: its inputs are those of v{model['latest_version']} (digest {model['digest']})"
    return f"v{model['version']} registered (inputs digest {model['digest']})"


def _promotion(decision: Mapping[str, Any] | None, model: Mapping[str, Any]) -> str:
    if not model["retrained"]:
        return "nothing to compare"
    if decision is None:
        return "not decided (promote=False)"
    metric = decision["metric"]
    if decision["production_version"] is None:
        return f"{metric} {decision['candidate_value']:.4f}; no production model before: promoted"
    verdict = "promoted" if decision["promoted"] else "production kept"
    return (f"{metric} {decision['candidate_value']:.4f} vs production v{decision['production_version']} "
            f"{decision['production_value']:.4f}: {verdict}")


def reaugment_markdown(dataset: str, method: str, seed: int, appended: Mapping[str, Any] | None,
                       counts: Mapping[str, Any] | None, model: Mapping[str, Any],
                       decision: Mapping[str, Any] | None, test_metrics: Mapping[str, float] | None = None) -> str:
    """The artifact: one table of what changed. ``model``: retrained (bool), version, latest_version,
    digest. ``test_metrics``: reported for reading only; promotion never looks at them."""
    rows = [("new interactions", _appended(appended)), ("users asked", _asked(counts)),
            ("LLM edges trained on", _edges(counts)), ("model", _model(model)),
            ("promotion (validation part)", _promotion(decision, model))]
    if test_metrics:
        rows.append(("test recall@20 (reported, not used)", f"{test_metrics.get('recall@20', float('nan')):.4f}"))
    table = "\n".join(f"| {what} | {value} |" for what, value in rows)
    return f"# reaugment {method} on {dataset}, split {seed}\n\n| | |\n|---|---|\n{table}\n"
