"""Datasets in their real on-disk formats, label tables, split lists, the embedded benchmark."""
