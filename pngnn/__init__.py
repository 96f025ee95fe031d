"""llm-pngnn: LLM-augmented Positive/Negative GNN recommendations.

The library is pure Python/torch: it never imports Prefect, and MLflow only inside
``pngnn.tracking``, so every step can be run and tested without any server.
"""

__version__ = "0.1.0"
