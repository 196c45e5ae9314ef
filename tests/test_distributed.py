"""The training loop under torchrun: two CPU processes (Gloo), sharded samplers, DDP, rank-0-only output.

The same code path runs NCCL on GPUs (uplr.runtime.init_distributed picks the backend); the CUDA
variant at the end skips itself without GPUs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).parent / "torchrun"


def _torchrun(tiny_params: Path, out: Path, row: str, env: dict, nproc: int = 2, extra: tuple = ()) -> None:
    cmd = [str(TORCHRUN), "--standalone", f"--nproc_per_node={nproc}", "-m", "uplr.cli", "train", "--row", row,
           "--params", str(tiny_params), "--out", str(out), "--resume-dir", str(out / "resume"),
           "--stage", f"train_{row}@0", *extra]
    proc = subprocess.run(cmd, cwd=tiny_params.parent, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("row", ["source_only", "aa"])
def test_torchrun_two_cpu_ranks(tiny_params, tracking, tmp_path, row):
    import mlflow

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / f"ddp_{row}"
    _torchrun(tiny_params, out, row, env)
    state = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert state["meta"]["step"] == 6
    assert (out / "resume/last.pt").exists() and not list(out.glob("resume/*.tmp"))
    client = mlflow.MlflowClient(tracking)
    exp = client.get_experiment_by_name("uplr-test")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`uplr.dvc_stage` = 'train_{row}@0'")
    assert len(runs) == 1  # rank 0 only talks to MLflow
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "train/loss_seg")] == [2, 4, 6]


@pytest.mark.gpu
def test_cuda_bf16_training_step(tiny_params, tracking, tmp_path):
    from uplr.config import load_config
    from uplr.stages import train

    cfg = load_config(tiny_params, ["train.device=cuda", "train.amp=true"])
    train.run(cfg, "aa", 0, tmp_path / "cuda", None, "train_aa@0")
    assert (tmp_path / "cuda/model.pt").exists()
