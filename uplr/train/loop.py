"""The training loop shared by every training stage (source-only, oracle, AA, SR/TGAA, self-training).

One loop, switched by a :class:`TrainJob`: a labelled stream (source, translated source, target for the
oracle) optionally drawn with weights (SR/TGAA), an optional unlabelled target stream with output-space
adversarial adaptation (AA), and an optional pseudo-labelled target stream (self-training). Written for
``torchrun``: samplers shard by rank, the model is wrapped in DistributedDataParallel when the world is
larger than one, and only rank 0 logs curves, writes checkpoints and talks to MLflow.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from uplr.config import Config
from uplr.data.labels import IGNORE_LABEL
from uplr.io import atomic_path
from uplr.runtime import (
    Dist,
    StageStopped,
    any_rank,
    autocast,
    barrier,
    deferred_stop,
    seed_everything,
    stop_requested,
)
from uplr.train import checkpoint as ckpt
from uplr.train import guards
from uplr.train.guards import NonFiniteLoss  # noqa: F401 - re-exported
from uplr.train.sampler import UniformStepSampler, WeightedStepSampler

log = logging.getLogger(__name__)

IGNORE = IGNORE_LABEL


@dataclass
class TrainJob:
    name: str
    seed: int
    iterations: int
    labeled: Dataset
    labeled_weights: np.ndarray | None = None
    target: Dataset | None = None  # unlabelled target images for AA
    pseudo: Dataset | None = None  # target images with pseudo labels for self-training
    adversarial: bool = False
    init_model: Path | None = None  # start from this model (and its discriminators, if it has them)
    fingerprint_extra: dict[str, Any] = field(default_factory=dict)
    step_offset: int = 0  # steps the chain trained before this job (a row continued from its parent's model)
    continue_schedule: bool = False  # the lr schedule goes on from step_offset instead of restarting


def _fingerprint(cfg: Config, job: TrainJob) -> str:
    from uplr.config import to_dict

    d = {
        "model": to_dict(cfg.model),
        "train": to_dict(cfg.train),
        "adv": to_dict(cfg.adversarial) if job.adversarial else None,
        "job": [job.name, job.seed, job.iterations, len(job.labeled), job.adversarial, str(job.init_model)],
        "weights": None if job.labeled_weights is None else hashlib.md5(np.asarray(job.labeled_weights).tobytes()).hexdigest(),
        "extra": job.fingerprint_extra,
    }
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resume_run_id(cfg: Config, job: TrainJob, resume_dir: Path | None) -> str | None:
    """The MLflow run of the checkpoint this job would resume (reopen it: one run per stage run)."""
    return ckpt.peek_run_id(resume_dir, _fingerprint(cfg, job))


def poly_factor(step: int, total: int, power: float) -> float:
    """Poly learning-rate schedule: lr = base * (1 - step / total) ** power."""
    return max(0.0, 1.0 - step / max(1, total)) ** power


def _loader(ds: Dataset, sampler, num_workers: int) -> Iterator[dict]:
    return iter(DataLoader(ds, batch_sampler=sampler, num_workers=num_workers, pin_memory=False))


def _stream(ds: Dataset, cfg: Config, job: TrainJob, dist: Dist, start: int, salt: int,
            weights: np.ndarray | None = None) -> Iterator[dict]:
    kw = dict(batch_size=cfg.train.batch_size, total_steps=job.iterations, seed=job.seed * 1000 + salt,
              start_step=start, rank=dist.rank, world_size=dist.world_size)
    sampler = WeightedStepSampler(weights, **kw) if weights is not None else UniformStepSampler(len(ds), **kw)
    return _loader(ds, sampler, cfg.data.num_workers)


def seg_loss(out: tuple[torch.Tensor | None, torch.Tensor], label: torch.Tensor, lambda_aux: float) -> torch.Tensor:
    """L_seg = CE(main) + λ_aux · CE(aux), logits upsampled to label size, 255 ignored."""
    aux, main = out
    size = label.shape[-2:]
    loss = F.cross_entropy(F.interpolate(main, size=size, mode="bilinear", align_corners=False), label,
                           ignore_index=IGNORE)
    if aux is not None and lambda_aux > 0:
        loss = loss + lambda_aux * F.cross_entropy(
            F.interpolate(aux, size=size, mode="bilinear", align_corners=False), label, ignore_index=IGNORE)
    return loss


def discriminator_input(logits: torch.Tensor, size: tuple[int, int], kind: str) -> torch.Tensor:
    """What the discriminator sees: softmax maps (AdaptSegNet) or weighted self-information (ADVENT).

    self-information: I(x)^(c) = -p^(c) · log p^(c) / log C, per class channel.
    """
    p = F.softmax(F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False), dim=1)
    if kind == "softmax":
        return p
    if kind == "self_information":
        c = p.shape[1]
        return -p * torch.log(p.clamp_min(1e-30)) / np.log(c)
    raise ValueError(kind)


class Trainer:
    def __init__(self, cfg: Config, job: TrainJob, dist: Dist, run=None, resume_dir: Path | None = None):
        from uplr.model.deeplab import build_model
        from uplr.model.weights import load_weights

        self.cfg, self.job, self.dist, self.run = cfg, job, dist, run
        self.resume_dir = resume_dir
        self.device = dist.device
        seed_everything(job.seed, cfg.train.deterministic)
        m = cfg.model
        self.model = build_model(m.trunk, m.num_classes, m.multi_level, m.aspp_all_branches, m.freeze_bn)
        if job.init_model is not None:
            self.model.load_state_dict(ckpt.load_model_state(job.init_model))
            log.info("initialised from %s", job.init_model)
        else:
            load_weights(self.model, m.init, cfg.base_dir)
        self.model.to(self.device)
        t = cfg.train
        self.opt = torch.optim.SGD(self.model.param_groups(t.lr, t.head_lr_mult), lr=t.lr, momentum=t.momentum,
                                   weight_decay=t.weight_decay)
        # poly schedule over the row's own steps, or (a continued row) over the chain's: it goes on from the
        # parent's last step, to train.schedule_iterations or, when that is 0, to the end of this row
        offset = job.step_offset if job.continue_schedule else 0
        horizon = t.schedule_iterations or (offset + job.iterations)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: poly_factor(s + offset, horizon,
                                                                                       t.poly_power))
        self.discs: dict[str, torch.nn.Module] = {}
        self.d_opts: dict[str, torch.optim.Optimizer] = {}
        if job.adversarial:
            from uplr.model.discriminator import build_discriminator

            levels = ["main", "aux"] if m.multi_level else ["main"]
            a = cfg.adversarial
            for lv in levels:
                d = build_discriminator(m.num_classes, ndf=cfg.adversarial.ndf).to(self.device)
                self.discs[lv] = d
                self.d_opts[lv] = torch.optim.Adam(d.parameters(), lr=a.d_lr, betas=tuple(a.d_betas))
            if job.init_model is not None:  # a continued row keeps its parent's discriminators
                for lv, state in ckpt.load_discriminators(job.init_model).items():
                    if lv in self.discs:
                        self.discs[lv].load_state_dict(state)
            self.d_scheds = {
                lv: torch.optim.lr_scheduler.LambdaLR(o, lambda s: poly_factor(s + offset, horizon, t.poly_power))
                for lv, o in self.d_opts.items()
            }
        self.fingerprint = _fingerprint(cfg, job)
        self.step = 0
        self.curve: list[dict[str, float]] = []
        self.window: dict[str, list[float]] = {}  # losses since the last logged step
        self.extra: dict[str, Any] = {}  # stage-specific state that must survive a resume (e.g. TGAA's S_k)
        state = ckpt.load_resume(resume_dir, self.fingerprint)
        if state is not None:
            self._restore(state)
        self.net = self.model
        if dist.world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
            self.discs = {k: torch.nn.parallel.DistributedDataParallel(
                d, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
                for k, d in self.discs.items()}

    # -- checkpointing ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "discriminators": {k: getattr(d, "module", d).state_dict() for k, d in self.discs.items()},
            "d_optimizers": {k: o.state_dict() for k, o in self.d_opts.items()},
            "d_schedulers": {k: s.state_dict() for k, s in getattr(self, "d_scheds", {}).items()},
            "rng": ckpt.rng_state(),
            "curve": self.curve,
            "window": self.window,
            "extra": self.extra,
            "run_id": getattr(self.run, "run_id", None),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        for k, d in self.discs.items():
            d.load_state_dict(state["discriminators"][k])
            self.d_opts[k].load_state_dict(state["d_optimizers"][k])
            self.d_scheds[k].load_state_dict(state["d_schedulers"][k])
        ckpt.set_rng_state(state["rng"])
        self.step = state["step"]
        self.curve = list(state["curve"])
        self.window = {k: list(v) for k, v in state["window"].items()}
        self.extra = state.get("extra", {})

    def save_checkpoint(self) -> None:
        if self.dist.rank == 0 and self.resume_dir is not None:
            guards.check_weights(self, "the resumable checkpoint")
            ckpt.save(Path(self.resume_dir) / ckpt.LAST, self._state())
        barrier()

    # -- one step --------------------------------------------------------------------------------
    def _to(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["image"].to(self.device, non_blocking=True), batch["label"].to(self.device, non_blocking=True)

    def train_step(self, src: dict, tgt: dict | None, pse: dict | None) -> dict[str, float]:
        cfg, dev = self.cfg, self.device
        amp = cfg.train.amp
        self.opt.zero_grad(set_to_none=True)
        for o in self.d_opts.values():
            o.zero_grad(set_to_none=True)
        for d in self.discs.values():
            for p in d.parameters():
                p.requires_grad_(False)
        logs: dict[str, float] = {}
        img, lbl = self._to(src)
        with autocast(dev, amp):
            out_s = self.net(img)
            loss = seg_loss(out_s, lbl, cfg.train.lambda_seg_aux)
        loss.backward()
        logs["loss_seg"] = float(loss.detach())
        if pse is not None:
            img_p, lbl_p = self._to(pse)
            with autocast(dev, amp):
                loss_p = seg_loss(self.net(img_p), lbl_p, cfg.train.lambda_seg_aux)
            loss_p.backward()
            logs["loss_pseudo"] = float(loss_p.detach())
        if self.discs and tgt is not None:
            logs.update(self._adversarial_step(out_s, tuple(img.shape[-2:]), tgt))
        guards.check_step(self, logs)
        self.opt.step()
        self.sched.step()
        for lv, o in self.d_opts.items():
            o.step()
            self.d_scheds[lv].step()
        guards.check_update(self, logs)
        logs["lr"] = self.sched.get_last_lr()[0]
        return logs

    def _adversarial_step(self, out_s, src_size: tuple[int, int], tgt: dict) -> dict[str, float]:
        """AA: fool the discriminators on target outputs, then train them (source = 0, target = 1)."""
        a, dev, amp = self.cfg.adversarial, self.device, self.cfg.train.amp
        img_t = tgt["image"].to(dev, non_blocking=True)
        size = tuple(img_t.shape[-2:])
        with autocast(dev, amp):
            out_t = self.net(img_t)
        levels = {"main": 1, "aux": 0}
        lambdas = {"main": a.lambda_adv_main, "aux": a.lambda_adv_aux}
        loss_adv = 0.0
        d_in_t, d_in_s = {}, {}
        for lv, d in self.discs.items():
            d_in_t[lv] = discriminator_input(out_t[levels[lv]], size, a.d_input)
            d_in_s[lv] = discriminator_input(out_s[levels[lv]].detach(), src_size, a.d_input)
            with autocast(dev, amp):
                d_out = d(d_in_t[lv])
            loss_adv = loss_adv + lambdas[lv] * F.binary_cross_entropy_with_logits(
                d_out.float(), torch.zeros_like(d_out, dtype=torch.float32))
        loss_adv.backward()
        logs = {"loss_adv": float(loss_adv.detach())}
        for d in self.discs.values():
            for p in d.parameters():
                p.requires_grad_(True)
        loss_d_total = 0.0
        for lv, d in self.discs.items():
            with autocast(dev, amp):
                o_s = d(d_in_s[lv])
                o_t = d(d_in_t[lv].detach())
            loss_d = 0.5 * (
                F.binary_cross_entropy_with_logits(o_s.float(), torch.zeros_like(o_s, dtype=torch.float32))
                + F.binary_cross_entropy_with_logits(o_t.float(), torch.ones_like(o_t, dtype=torch.float32)))
            loss_d.backward()
            loss_d_total += float(loss_d.detach())
        logs["loss_d"] = loss_d_total
        return logs

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, stop_at: int | None = None) -> None:
        """Train from the current step up to ``stop_at`` (default: the end), checkpointing on the way."""
        job, cfg = self.job, self.cfg
        start, stop = self.step, job.iterations if stop_at is None else min(stop_at, job.iterations)
        if start >= stop:
            return
        self.model.train()
        src = _stream(job.labeled, cfg, job, self.dist, start, 1, job.labeled_weights)
        tgt = _stream(job.target, cfg, job, self.dist, start, 2) if job.target is not None else None
        pse = _stream(job.pseudo, cfg, job, self.dist, start, 3) if job.pseudo is not None else None
        bar = tqdm(range(start, stop), desc=job.name, disable=self.dist.rank != 0, mininterval=2.0,
                   initial=start, total=job.iterations)
        with deferred_stop():  # SIGTERM/SIGINT: finish the step, checkpoint, then stop
            for _ in bar:
                try:
                    batches = (next(src), next(tgt) if tgt else None, next(pse) if pse else None)
                except Exception:
                    if not stop_requested():
                        raise
                    batches = None  # Ctrl-C reached the loader workers too: stop before this step
                if batches is not None:
                    self._one_step(*batches, bar)
                if any_rank(bool(stop_requested()))[0]:
                    self.save_checkpoint()
                    bar.close()
                    where = (f"at step {self.step} of {job.iterations}"
                             + (f"; checkpoint {Path(self.resume_dir) / ckpt.LAST} resumes it (dvc repro)"
                                if self.resume_dir is not None else " (no --resume-dir: nothing to resume)"))
                    raise StageStopped(stop_requested() or 15, where)
        self.save_checkpoint()

    def _one_step(self, src: dict, tgt: dict | None, pse: dict | None, bar) -> None:
        """One optimisation step plus its bookkeeping: curve window, MLflow row, periodic checkpoint."""
        job, cfg = self.job, self.cfg
        logs = self.train_step(src, tgt, pse)
        self.step += 1
        for k, v in logs.items():
            self.window.setdefault(k, []).append(v)
        if self.step % cfg.train.log_every == 0 or self.step == job.iterations:
            row = {k: float(np.mean(v)) for k, v in self.window.items()}
            row["lr"] = logs["lr"]
            self.window = {}
            self.curve.append({"step": self.step, **row})
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k != "lr"})
            if self.run is not None:
                self.run.log_metrics({f"train/{k}": v for k, v in row.items()}, step=self.step)
        if self.step % cfg.train.checkpoint_every == 0 and self.step < job.iterations:
            self.save_checkpoint()

    def write_outputs(self, model_path: Path, curve_path: Path | None, meta: dict[str, Any]) -> None:
        if self.dist.rank != 0:
            return
        guards.check_weights(self, str(model_path))
        ckpt.save_model(model_path, self.model.state_dict(),
                        {**meta, "step": self.step, "chain_step": self.job.step_offset + self.step},
                        {k: getattr(d, "module", d).state_dict() for k, d in self.discs.items()})
        if curve_path is not None:
            keys = sorted({k for row in self.curve for k in row} - {"step"})
            with atomic_path(curve_path) as tmp, tmp.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=["step", *keys])
                w.writeheader()
                for row in self.curve:
                    w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
