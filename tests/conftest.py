"""Shared fixtures: tiny fake datasets in the real layouts, a params file, an MLflow store per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Tests use tiny tensors, where one thread beats two (and subprocesses - DVC stages - inherit this).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    if not torch.cuda.is_available():
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """One SQLite MLflow store for the session (creating one takes seconds)."""
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return f"sqlite:///{db}"


@pytest.fixture
def tracking(mlflow_uri, monkeypatch, tmp_path) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("UPLR_ROOT", str(tmp_path))
    return mlflow_uri


@pytest.fixture
def tiny_params(tmp_path) -> Path:
    """A params file over fake GTA5 (source) and Cityscapes (target) data, with tiny limits."""
    from fakes import make_fake_cityscapes, make_fake_gta5

    make_fake_gta5(tmp_path / "data/src", n=6, size=(64, 32), seed=1)
    make_fake_cityscapes(tmp_path / "data/tgt", split="train", n=4, size=(64, 32), seed=2)
    make_fake_cityscapes(tmp_path / "data/tgt", split="val", n=3, size=(64, 32), seed=3)
    p = tmp_path / "params.yaml"
    p.write_text(
        """
data:
  source: {dataset: gta5, root: data/src, split: data/src/all.txt, size: [64, 32]}
  target: {dataset: cityscapes, root: data/tgt, split: data/tgt/train.txt, val_split: data/tgt/val.txt, size: [64, 32]}
model: {trunk: resnet18}
train: {iterations: 6, batch_size: 2, lr: 0.01, checkpoint_every: 3, log_every: 2, threads: 1}
evaluate: {batch_size: 2}
tracking: {experiment: uplr-test}
"""
    )
    return p
