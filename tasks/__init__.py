"""Thin Prefect tasks over ``pngnn``: arguments in, one library call, MLflow logging, result out."""
