"""The MLflow model registry: names, the ``production`` alias, and promotion.

Every trained model is registered as ``pngnn-<dataset>-<method>`` (one new version per
training run). The version that serves recommendations carries the alias ``production``;
a new version takes the alias only when it beats the current one on the promotion
metric (recall@20 on its own test split, by default), so a worse retrain never replaces
a better model. The first version a flow registers takes the alias when there is none
(``promote_if_none``), so ``models:/<name>@production`` works after the first ``pngnn run``;
without any ``production`` alias, ``pngnn recommend`` uses the latest version.

MLflow is imported lazily (``pngnn`` stays importable without it); the tracking URI
always comes from ``Settings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pngnn.core.errors import PngnnError
from pngnn.core.settings import Settings

PRODUCTION = "production"
PROMOTION_METRIC = "recall_at_20"


def model_name(dataset: str, method: str) -> str:
    return f"pngnn-{dataset}-{method}"


def client(settings: Settings):
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_uri)
    return mlflow.MlflowClient()


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    version: str
    run_id: str
    alias: str | None  # "production", or None when the latest version was taken

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def describe(self) -> str:
        how = f"alias {self.alias}" if self.alias else "latest version, no production alias"
        return f"{self.name} v{self.version} ({how})"


def latest_version(mlf: Any, name: str):
    versions = mlf.search_model_versions(f"name = '{name}'")
    return max(versions, key=lambda v: int(v.version)) if versions else None


def production_version(mlf: Any, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return mlf.get_model_version_by_alias(name, PRODUCTION)
    except MlflowException:
        return None


def resolve(settings: Settings, dataset: str, method: str) -> ResolvedModel:
    """The ``production`` version of a registered model, else its latest version."""
    name = model_name(dataset, method)
    mlf = client(settings)
    version = production_version(mlf, name)
    alias = PRODUCTION if version is not None else None
    if version is None:
        version = latest_version(mlf, name)
    if version is None:
        raise PngnnError(
            f"no registered model '{name}' in {settings.mlflow_uri}; train one first "
            f"(`pngnn run --method {method}` or `prefect deployment run 'pipeline/quick'`)"
        )
    return ResolvedModel(name, str(version.version), version.run_id, alias)


def registered_methods(settings: Settings, dataset: str) -> list[str]:
    """Methods with at least one registered model for ``dataset``."""
    prefix = model_name(dataset, "")
    return sorted(m.name.removeprefix(prefix) for m in client(settings).search_registered_models()
                  if m.name.startswith(prefix))


def version_of_run(settings: Settings, dataset: str, method: str, run_id: str) -> str:
    name = model_name(dataset, method)
    versions = client(settings).search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if not versions:
        raise PngnnError(f"run {run_id} registered no version of '{name}'; train it with register=True")
    return str(max(int(v.version) for v in versions))


@dataclass(frozen=True)
class Promotion:
    name: str
    candidate_version: str
    candidate_value: float
    production_version: str | None
    production_value: float | None
    promoted: bool
    metric: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        if self.production_version is None:
            return f"{self.name} v{self.candidate_version} is the first production model ({self.metric} " \
                   f"{self.candidate_value:.4f})"
        verdict = "promoted" if self.promoted else "kept"
        winner = self.candidate_version if self.promoted else self.production_version
        return (f"{self.name}: v{self.candidate_version} {self.metric} {self.candidate_value:.4f} vs production "
                f"v{self.production_version} {self.production_value:.4f}: {verdict} v{winner}")


def promote_if_better(settings: Settings, dataset: str, method: str, run_id: str,
                      metric: str = PROMOTION_METRIC) -> Promotion:
    """Give the run's model version the ``production`` alias if it beats the current one on ``metric``.

    Ties keep the current production model. With no production model yet, the candidate
    is promoted.
    """
    name = model_name(dataset, method)
    mlf = client(settings)
    candidate = version_of_run(settings, dataset, method, run_id)
    value = mlf.get_run(run_id).data.metrics.get(metric)
    if value is None:
        raise PngnnError(f"run {run_id} has no metric '{metric}'; evaluate it before comparing")
    current = production_version(mlf, name)
    current_value = None
    if current is not None:
        current_value = mlf.get_run(current.run_id).data.metrics.get(metric, float("-inf"))
    promoted = current is None or value > current_value
    if promoted:
        mlf.set_registered_model_alias(name, PRODUCTION, candidate)
    return Promotion(name, candidate, float(value), None if current is None else str(current.version),
                     current_value, promoted, metric)


def promote_if_none(settings: Settings, dataset: str, method: str, run_id: str,
                    metric: str = PROMOTION_METRIC) -> Promotion | None:
    """Give the run's model version the ``production`` alias if the model has no production
    version yet (the promotion of a first model); None, changing nothing, when it has one:
    replacing it is ``promote_if_better``'s decision, on the metric."""
    if production_version(client(settings), model_name(dataset, method)) is not None:
        return None
    return promote_if_better(settings, dataset, method, run_id, metric)
