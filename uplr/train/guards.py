"""Non-finite training stops the stage: checks of every step, and a last guard before anything is written.

Before the optimisers step, every loss part and every gradient must be finite (agreed by all ranks);
after it, the weights and BatchNorm's running statistics (finite losses and gradients can still
overflow them: lr x gradient > float max, huge activations). The first failure raises
:class:`NonFiniteLoss`: one line with the step, the part and the likely cause (``train.lr``,
``adversarial.d_lr``, the initial weights or inputs at step 1, bf16 overflow on CUDA). Nothing is written
after it, and :func:`check_weights` refuses to write non-finite weights anywhere.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from uplr.errors import UplrError
from uplr.runtime import any_rank


class NonFiniteLoss(UplrError):
    """A loss part, a gradient or a weight became NaN/inf: training stops, nothing is written."""


def finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every value is finite: a fused 2-norm per tensor screens (a few ms for the 3M values of the
    embedded model), an exact check confirms (a norm can overflow for huge but finite values)."""
    if not tensors:
        return True
    try:
        norms = torch._foreach_norm(tensors, 2.0)
    except (AttributeError, RuntimeError, TypeError):
        norms = [torch.linalg.vector_norm(t.detach()) for t in tensors]
    if bool(torch.isfinite(torch.stack([n.float() for n in norms])).all()):
        return True
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def max_abs(tensors: list[torch.Tensor]) -> float:
    """The largest |value| (for messages only)."""
    values = [float(t.detach().abs().max()) for t in tensors if t.numel()]
    return float("nan") if any(math.isnan(v) for v in values) else max(values, default=0.0)


def all_finite(state: dict[str, Any]) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values()
               if isinstance(v, torch.Tensor) and v.is_floating_point())


def _modules(trainer) -> list[torch.nn.Module]:
    return [trainer.model, *trainer.discs.values()]


def likely_cause(trainer, part: str) -> str:
    """The parameter most likely at fault for a non-finite ``part`` at the trainer's current step."""
    t, a = trainer.cfg.train, trainer.cfg.adversarial
    if trainer.step == 0 and part != "weights":
        init = trainer.job.init_model or trainer.cfg.model.init
        return (f"The very first step already diverged: check the initial weights ({init}) and the input "
                "images (NaN/inf pixels); the learning rate has not acted yet")
    amp = " (or bf16 autocast overflow: try train.amp=false)" if t.amp and trainer.device.type == "cuda" else ""
    if part == "loss_d":
        return f"Likely cause: adversarial.d_lr={a.d_lr:g} is probably too high{amp}; lower it"
    if part == "loss_adv":
        return (f"Likely cause: train.lr={t.lr:g} or adversarial.lambda_adv_main={a.lambda_adv_main:g} is "
                f"probably too high{amp}; lower it")
    return f"Likely cause: train.lr={t.lr:g} is probably too high{amp}; lower it (e.g. 10x)"


def _error(trainer, what: str, part: str) -> NonFiniteLoss:
    return NonFiniteLoss(
        f"{trainer.job.name}: non-finite training at step {trainer.step + 1} of {trainer.job.iterations}: "
        f"{what}; training stopped, no model written and the resumable checkpoint left at its last finite "
        f"state. {likely_cause(trainer, part)}")


def check_step(trainer, logs: dict[str, float]) -> None:
    """Before the optimisers step: every loss part and every gradient must be finite (all ranks)."""
    bad = next((k for k, v in logs.items() if not math.isfinite(v)), None)
    if bad is None:
        grads = [p.grad for m in _modules(trainer) for p in m.parameters() if p.grad is not None]
        if not finite(grads):
            bad = "gradients"
    if not any_rank(bad is not None)[0]:
        return
    bad = bad or "loss on another rank"
    losses = ", ".join(f"{k}={v:.4g}" for k, v in logs.items())
    what = (f"the gradients are not finite (losses: {losses})" if bad == "gradients"
            else f"{bad} is {logs.get(bad, float('nan'))}")
    raise _error(trainer, what, bad)


def check_update(trainer, logs: dict[str, float]) -> None:
    """After the optimisers stepped: the weights and BatchNorm statistics must be finite (under DDP the
    weights are identical on every rank; a rank that fails raises alone and torchrun ends the others)."""
    state = [t.detach() for m in _modules(trainer) for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    if finite(state):
        return
    grad = max_abs([p.grad for m in _modules(trainer) for p in m.parameters() if p.grad is not None])
    losses = ", ".join(f"{k}={v:.4g}" for k, v in logs.items())
    raise _error(trainer, f"the weights or BatchNorm statistics overflowed in the update (largest |gradient| "
                          f"{grad:.3g}; losses {losses})", "weights")


def check_weights(trainer, what: str) -> None:
    """Never write non-finite weights (a last guard: the step checks stop training before that)."""
    states = [trainer.model.state_dict(), *(getattr(d, "module", d).state_dict() for d in trainer.discs.values())]
    if not all(all_finite(sd) for sd in states):
        raise NonFiniteLoss(f"{trainer.job.name}: the weights at step {trainer.step} are not finite; {what} was "
                            f"not written. {likely_cause(trainer, 'weights')}")
