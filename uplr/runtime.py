"""Process-level runtime: logging, seeds, device, and torchrun-aware distributed helpers.

The training loop is written for ``torchrun`` from the start: :func:`init_distributed` joins the
process group when ``WORLD_SIZE`` > 1 (NCCL on CUDA, Gloo on the CPU), and only rank 0 logs at INFO,
writes checkpoints and talks to MLflow. One process is the default and what runs here.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from uplr.logs import setup_logging  # noqa: F401 - lives in a light module for the CLI; re-exported

log = logging.getLogger("uplr")


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


@dataclass
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU. ``cuda`` without a GPU is an error, not a fallback."""
    from uplr.errors import UplrError

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UplrError("train.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UplrError(f"train.device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def init_distributed(device_name: str = "auto") -> Dist:
    """Join the torchrun process group if there is one; pick this rank's device."""
    device = select_device(device_name)
    ws, rk = world_size(), rank()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if ws > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    return Dist(rank=rk, world_size=ws, local_rank=local, device=device)


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA; a no-op context on the CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")
