"""Interaction data: dataset files, the DuckDB store and its SQL, ingest, splits, lineage.

Owns the single source of truth between steps: ``datasets`` (MovieLens files, checksums),
``store`` and ``sql_files`` (DuckDB and the SQL shipped in ``sql/``), ``ingest``, ``split``
(``SplitData``, ``Interactions``), ``prepare`` (files -> store -> splits, the first two arrows of
the pipeline) and ``lineage`` (a split as an MLflow input). May import ``pngnn.core`` only.
"""
