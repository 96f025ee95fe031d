"""llm-pngnn: LLM-augmented Positive/Negative GNN recommendations.

The library in layers, each a subpackage that imports only the ones below it (checked by
import-linter in ``make test``; ``pyproject.toml`` holds the contract):

    app          the pngnn command line and its workflows: train runs, tuning, what-if
    tracking     MLflow runs, registry, the served pyfunc model, recommend
    augment      LLM augmentation: candidates, prompts, cached answers, edges
    training     the fit loop, checkpoints, devices, the method registry
    models       graphs, losses, samplers, LightGCN, PN-GNN, EASE, PN-EASE, iALS
    evaluation   metrics, full ranking, segments, results and reports
    data         dataset files, the DuckDB store and its SQL, ingest, splits
    core         errors, constants, settings, training configurations, profiles

It never imports Prefect (``tasks/`` and ``flows/`` do), and MLflow only where a step logs to
a run, so every step runs and is tested without any server.
"""

__version__ = "0.1.0"
