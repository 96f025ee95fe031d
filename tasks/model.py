"""Model tasks: train one method on one split (an MLflow child run), then evaluate it.

The trained model crosses from ``train`` to ``evaluate`` through MLflow (the model
artifact of the child run), not through task results or ad-hoc files.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from pngnn.config import TrainConfig
from pngnn.constants import LIKE_THRESHOLD
from pngnn.methods import NEEDS_AUGMENTATION
from pngnn.registry import model_name
from pngnn.settings import Settings
from pngnn.steps import evaluate_step, load_split_step, train_step
from pngnn.tracking import epoch_logger, load_model, log_evaluation, log_training, run_params, run_tags, setup


@task(name="train", task_run_name="train-{method}-{dataset}-seed{seed}")
def train_task(dataset: str, seed: int, method: str, config: dict[str, Any], profile: str,
               parent_run_id: str | None = None, tags: dict[str, str] | None = None,
               register: bool = True) -> str:
    """Train; log params, per-epoch loss, curve and model to a child MLflow run; return its run id.

    ``tags``: extra run tags (the LLM model and prompt version of augmented methods).
    ``register``: also register the model as ``pngnn-<dataset>-<method>`` (a new version).
    """
    import mlflow

    settings = Settings.from_env()
    cfg = TrainConfig(**config)
    split = load_split_step(settings, dataset, seed, with_augmented=method in NEEDS_AUGMENTATION)
    setup(settings, dataset)
    with mlflow.start_run(run_name=f"{method}-seed{seed}", parent_run_id=parent_run_id, nested=True,
                          tags={**run_tags(split, method, profile, cfg), **(tags or {})}) as run:
        mlflow.log_params(run_params(split, method, cfg))
        result = train_step(split, method, cfg, on_epoch=epoch_logger(), progress=False)
        log_training(result, method, dataset, seed,
                     registered_name=model_name(dataset, method) if register else None)
        if result.history:
            print(f"{method} seed {seed}: {len(result.history)} epochs, final loss {result.history[-1].loss:.4f}, "
                  f"{result.seconds:.1f}s")
        return run.info.run_id


@task(name="evaluate", task_run_name="evaluate-{method}-{dataset}-seed{seed}")
def evaluate_task(dataset: str, seed: int, method: str, run_id: str,
                  threshold: float = LIKE_THRESHOLD) -> dict[str, float]:
    """Load the run's model from MLflow, rank all items for every test user, log P/R/NDCG@K."""
    import mlflow

    settings = Settings.from_env()
    split = load_split_step(settings, dataset, seed)
    model = load_model(settings, run_id)
    metrics, seconds = evaluate_step(model, split, threshold)
    with mlflow.start_run(run_id=run_id, nested=True):
        log_evaluation(metrics, seconds, f"{method} {dataset} seed {seed}", {"threshold": threshold})
    print(f"{method} seed {seed}: P@10 {metrics['precision@10']:.4f} R@20 {metrics['recall@20']:.4f}")
    return metrics
