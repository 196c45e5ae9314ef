"""What one training iteration costs: FLOPs (forward + backward) and peak tensor memory, measured.

:func:`measure_row` builds the model, optimiser and discriminators exactly as the training stage of a
row does (:class:`uplr.train.loop.Trainer` with the row's :class:`~uplr.train.loop.TrainJob` switches),
feeds it random batches of the configured sizes and runs ONE ``Trainer.train_step`` (forward, backward,
optimiser step) under

* ``torch.utils.flop_counter.FlopCounterMode``: the FLOPs of the matrix products and convolutions of
  the forward and backward passes (1 multiply-add = 2 FLOPs; element-wise ops, losses and the optimiser
  are not counted: they are a small share of a convolutional network's work);
* :class:`LiveTensorBytes`: the peak of the bytes held by tensors created during the step (activations
  saved for backward, gradients, the optimiser's momentum buffers on this first step), the weights
  excluded. A CPU-side count of tensor storage: a GPU allocator's caching and fragmentation come on
  top, so it is a lower bound of what ``torch.cuda.max_memory_allocated`` would show.

FLOPs depend on shapes only, never on weight values, so the measurement starts from random weights
(``model.init`` is not read). Also measured: the forward FLOPs of one target image at the target size
(inference: evaluation, TGAA's ranking passes, pseudo labels).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from uplr.config import Config
from uplr.data.labels import IGNORE_LABEL

log = logging.getLogger(__name__)



class LiveTensorBytes(TorchDispatchMode):
    """Track the bytes of every tensor storage created by an op inside the mode, and their peak.

    A storage is counted once (views and in-place results share it) and uncounted when it is freed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def _track(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        key, n = st._cdata, st.nbytes()  # the storage's identity (meta storages all have data_ptr 0)
        if n == 0 or key in self.live:
            return
        self.live[key] = n
        self.current += n
        self.peak = max(self.peak, self.current)
        weakref.finalize(st, self._free, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


def row_shape(cfg: Config, row: str) -> dict[str, Any]:
    """What one iteration of ``row`` processes: the labelled image size and which extra streams it has.

    Sizes are (height, width). source_only/aa/it/sr/tgaa/upst read the source at ``data.source.size``;
    the oracle reads the target at ``data.target.size``; aa/it/sr/tgaa add an unlabelled target image
    and the discriminators; upst keeps them (it continues the +TGAA model with its adversarial term) and
    adds a pseudo-labelled target image.
    """
    from uplr.experiments import ROWS  # the experiment grid: every row's streams

    if row not in ROWS:
        raise ValueError(f"unknown row {row!r}")
    r = ROWS[row]
    src = tuple(reversed(cfg.data.source.size))
    tgt = tuple(reversed(cfg.data.target.size))
    return {"labeled": tgt if r.labeled == "target" else src, "target": tgt if r.adversarial else None,
            "pseudo": tgt if r.pseudo else None, "adversarial": bool(r.adversarial)}


class _Placeholder(torch.utils.data.Dataset):
    """The job's datasets are not read by ``train_step``; only their length enters the fingerprint."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int):  # pragma: no cover - never called
        raise IndexError(i)


def _batch(n: int, size: tuple[int, int], classes: int, gen: torch.Generator, device: torch.device) -> dict:
    h, w = size
    label = torch.randint(0, classes, (n, h, w), generator=gen)
    label[:, : h // 8] = IGNORE_LABEL  # some ignored pixels, as real labels have
    return {"image": torch.randn(n, 3, h, w, generator=gen).to(device), "label": label.to(device)}


@contextlib.contextmanager
def _meta_step():
    """What the training step does with data, made shape-only for meta tensors, inside the block.

    ``float(t)`` of a meta tensor is 0.0 (the step logs its losses as floats), ``bool(t)`` is True (its
    finiteness guards, uplr/train/guards.py), and ``autocast`` on the
    meta device is a no-op context (torch has no autocast for it; the measurement is fp32, as on the CPU).
    """
    from uplr.train import loop

    original_float, original_bool, original_autocast = torch.Tensor.__float__, torch.Tensor.__bool__, loop.autocast

    def _float(self: torch.Tensor) -> float:
        return 0.0 if self.device.type == "meta" else original_float(self)

    def _bool(self: torch.Tensor) -> bool:  # the step's finiteness guards: a meta tensor "is finite"
        return True if self.device.type == "meta" else original_bool(self)

    def _autocast(device: torch.device, enabled: bool = True):
        return contextlib.nullcontext() if device.type == "meta" else original_autocast(device, enabled)

    torch.Tensor.__float__, torch.Tensor.__bool__, loop.autocast = _float, _bool, _autocast
    try:
        yield
    finally:
        torch.Tensor.__float__, torch.Tensor.__bool__, loop.autocast = original_float, original_bool, original_autocast


@contextlib.contextmanager
def _no_guards():
    """The step's own cost, without the non-finite screens (uplr/train/guards.py): they read values,
    which the meta device has none of, and their few small tensors are bookkeeping, not training."""
    from uplr.train import guards

    saved = guards.check_step, guards.check_update
    guards.check_step = guards.check_update = lambda *a, **k: None
    try:
        yield
    finally:
        guards.check_step, guards.check_update = saved


def measure_row(cfg: Config, row: str, device: str = "meta") -> dict[str, Any]:
    """FLOPs and peak tensor bytes of one training iteration of ``row`` (see the module docstring).

    ``device="meta"`` (default): the Trainer, its model, discriminators and batches live on PyTorch's meta
    device, which carries shapes and no data: the step runs the same operators (so the FLOP counter and
    the tensor tracker see the same shapes and storages) in a fraction of a second and without the
    memory; the losses it logs are 0. ``device="cpu"`` computes for real (same figures; minutes at the
    paper's sizes).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from uplr.runtime import Dist
    from uplr.train.loop import Trainer, TrainJob

    cfg = copy.deepcopy(cfg)
    cfg.model.init = "scratch"  # shapes decide FLOPs; no weights file is read
    cfg.train.device = "cpu"
    cfg.train.amp = False
    shape = row_shape(cfg, row)
    ph = _Placeholder()
    job = TrainJob(f"cost/{row}", 0, 1, labeled=ph, target=ph if shape["target"] else None,
                   pseudo=ph if shape["pseudo"] else None, adversarial=shape["adversarial"])
    dist = Dist(rank=0, world_size=1, local_rank=0, device=torch.device(device))
    trainer = Trainer(cfg, job, dist)
    trainer.model.train()
    gen = torch.Generator().manual_seed(0)
    k, n = cfg.model.num_classes, cfg.train.batch_size
    src = _batch(n, shape["labeled"], k, gen, dist.device)
    tgt = _batch(n, shape["target"], k, gen, dist.device) if shape["target"] else None
    pse = _batch(n, shape["pseudo"], k, gen, dist.device) if shape["pseudo"] else None
    weights = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    d_weights = sum(p.numel() * p.element_size() for d in trainer.discs.values() for p in d.parameters())
    counter, mem = FlopCounterMode(display=False), LiveTensorBytes()
    t0 = time.perf_counter()
    with _meta_step(), _no_guards(), counter, mem:
        trainer.train_step(src, tgt, pse)
    seconds = time.perf_counter() - t0
    train_flops = int(counter.get_total_flops())

    # inference: one target image at the target size, forward only (evaluation, ranking, pseudo labels)
    model = trainer.model.eval()
    infer = FlopCounterMode(display=False)
    with torch.no_grad(), infer:
        model(torch.randn(1, 3, *tuple(reversed(cfg.data.target.size)), generator=gen).to(dist.device))
    del trainer, model
    return {
        "row": row,
        "trunk": cfg.model.trunk,
        "multi_level": cfg.model.multi_level,
        "labeled_hw": list(shape["labeled"]),
        "target_hw": list(shape["target"]) if shape["target"] else None,
        "pseudo_hw": list(shape["pseudo"]) if shape["pseudo"] else None,
        "adversarial": shape["adversarial"],
        "batch_size": n,
        "flops_per_iteration": train_flops,
        "peak_step_bytes": int(mem.peak),
        "weight_bytes": int(weights),
        "discriminator_weight_bytes": int(d_weights),
        "inference_flops_per_target_image": int(infer.get_total_flops()),
        "measured_seconds": round(seconds, 2),
        "measured_with": f"torch {torch.__version__} FlopCounterMode; device {dist.device}",
    }


def shape_key(cfg: Config, row: str) -> str:
    """Rows with the same key cost the same per iteration (same streams, sizes and model)."""
    s = row_shape(cfg, row)
    m = cfg.model
    return (f"{m.trunk}-{m.num_classes}-{m.multi_level}-{m.aspp_all_branches}|{s}|"
            f"{cfg.adversarial.d_input if s['adversarial'] else ''}|{cfg.train.batch_size}|{cfg.data.target.size}")


def main(argv: list[str] | None = None) -> int:
    """``python -m uplr.train.cost --params P --row R --out cost.json``: measure one row, write the JSON."""
    import argparse
    import sys

    from uplr.config import load_config
    from uplr.errors import UplrError
    from uplr.io import write_json

    ap = argparse.ArgumentParser(prog="python -m uplr.train.cost", description=main.__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--row", required=True, help="source_only | oracle | aa | it | sr | tgaa | upst")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="meta", help="meta (default: shapes only, seconds) or cpu (computes)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        cfg = load_config(args.params, args.override)
        try:
            row_shape(cfg, args.row)
        except ValueError:
            raise UplrError(f"--row {args.row!r}: not a training row; valid: source_only, oracle, aa, it, sr, "
                            "tgaa, upst") from None
        result = measure_row(cfg, args.row, args.device)
    except UplrError as e:
        print(f"uplr.train.cost: error: {e}", file=sys.stderr)
        return 2
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
