"""Process-level runtime: logging, seeds, device, and torchrun-aware distributed helpers.

The training loop is written for ``torchrun`` from the start: :func:`init_distributed` joins the
process group when ``WORLD_SIZE`` > 1 (NCCL on CUDA, Gloo on the CPU), and only rank 0 logs at INFO,
writes checkpoints and talks to MLflow. One process is the default and what runs here.

Also: the number of CPU threads (``train.threads``, set here rather than taken from ``OMP_NUM_THREADS``
so that one seed gives one number on one machine), a description of the numeric runtime recorded with
every run, graceful stops (SIGTERM/SIGINT end a training loop at a step boundary after a checkpoint) and
the masking of credentials in every log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from uplr.errors import UplrError
from uplr.logs import MaskCredentials, mask_credentials, setup_logging  # noqa: F401 - re-exported

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
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UplrError("train.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UplrError(f"train.device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def set_threads(threads: int | None) -> int:
    """Fix torch's intra-op CPU threads (``train.threads``); 0 or None keeps torch's default.

    The thread count changes the order of floating-point reductions and hence the numbers: setting it
    here, from a parameter, makes one seed give one result on one machine whatever ``OMP_NUM_THREADS``
    says. Returns the count in effect.
    """
    if threads:
        if threads < 0:
            raise UplrError(f"train.threads must be >= 0 (0 = torch's default), got {threads}")
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return torch.get_num_threads()


def runtime_info(device: torch.device | str | None = None) -> dict[str, str]:
    """What decides the numbers besides code, data and params: threads, device, torch, MKL, OpenMP."""
    info = {
        "threads": str(torch.get_num_threads()),
        "interop_threads": str(torch.get_num_interop_threads()),
        "torch_version": torch.__version__,
        "mkl": str(torch.backends.mkl.is_available()).lower(),
        "mkldnn": str(torch.backends.mkldnn.is_available()).lower(),
        "openmp": str(torch.backends.openmp.is_available()).lower(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS", "unset"),
        "cpu_capability": _safe(lambda: torch.backends.cpu.get_cpu_capability()),
    }
    parallel = _safe(torch.__config__.parallel_info)
    for line in parallel.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("aten parallel backend", "mkl version", "mkldnn version", "openmp"):
            info[key.replace("aten ", "").replace(" ", "_")] = value.strip()
    if device is not None:
        info["device"] = str(device)
    if torch.cuda.is_available():
        info["cuda_version"] = str(torch.version.cuda)
        info["cudnn_version"] = str(torch.backends.cudnn.version())
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _safe(fn) -> str:
    try:
        return str(fn())
    except Exception:  # noqa: BLE001 - a description, never a reason to fail
        return "unknown"


def init_distributed(device_name: str = "auto", threads: int | None = None) -> Dist:
    """Join the torchrun process group if there is one; pick this rank's device; fix the CPU threads."""
    set_threads(threads)
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


# -- graceful stop -------------------------------------------------------------------------------------
class StageStopped(UplrError):
    """SIGTERM/SIGINT ended the stage (after a last checkpoint when it came during training)."""

    def __init__(self, signum: int, where: str = ""):
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name}{' ' + where if where else ''}")


_stop = {"signum": 0, "defer": 0, "depth": 0}


def stop_requested() -> int:
    """The signal number received while stops were deferred (0: none)."""
    return _stop["signum"]


def _on_signal(signum, frame) -> None:  # noqa: ARG001
    if _stop["defer"] and not _stop["signum"]:
        _stop["signum"] = signum  # the training loop stops at the end of the current step
        log.warning("%s received: stopping after this step (send it again to stop at once)",
                    signal.Signals(signum).name)
        return
    raise StageStopped(signum)


@contextlib.contextmanager
def stop_handlers() -> Iterator[None]:
    """SIGTERM and SIGINT raise :class:`StageStopped` (or, inside :func:`deferred_stop`, set a flag)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    outermost = _stop["depth"] == 0
    if outermost:
        _stop["signum"] = 0
    _stop["depth"] += 1
    for s in previous:
        signal.signal(s, _on_signal)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _stop["depth"] -= 1
        if outermost:
            _stop["signum"] = 0


@contextlib.contextmanager
def deferred_stop() -> Iterator[None]:
    """Inside: a first stop signal only sets a flag (see :func:`stop_requested`) for the loop to honour."""
    _stop["defer"] += 1
    try:
        yield
    finally:
        _stop["defer"] -= 1


def any_rank(*flags: bool) -> list[bool]:
    """Each flag, true if it is true on any rank (one tiny all-reduce; no collective with one process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [bool(f) for f in flags]
    t = torch.tensor([float(bool(f)) for f in flags])
    if torch.distributed.get_backend() == "nccl":
        t = t.cuda()
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]
