"""MLflow runs and their lineage tags."""
