"""uplr: a reproduction suite for UPLR (ICCV 2021) built on DVC, MLflow and PyTorch."""

__version__ = "0.1.0"
