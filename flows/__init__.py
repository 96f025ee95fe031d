"""Prefect flows of llm-pngnn."""
