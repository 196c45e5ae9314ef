"""The training loop, samplers, checkpoints and what every training stage does around a row."""
