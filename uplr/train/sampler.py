"""Resumable, rank-sharded samplers for iteration-based training.

Training is counted in iterations, not epochs, and must resume mid-run with the same batches, and
shard across ``torchrun`` ranks. Both samplers therefore compute the global batch of step ``s`` as a
pure function of ``(seed, s)`` and hand rank ``r`` the slice ``[r::world_size]`` of it:

- :class:`UniformStepSampler`: passes over the dataset in seeded random permutations (each image once
  per pass), the usual "shuffle" sampler;
- :class:`WeightedStepSampler`: draws images with replacement with probability proportional to given
  weights (the SR / TGAA sampler, weights = p̂_i).

Resuming at step ``k`` is ``start_step=k``; no iterator state needs saving.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from uplr.errors import UplrError


class _StepSampler(Sampler[list[int]]):
    def __init__(
        self,
        n: int,
        batch_size: int,
        total_steps: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if n <= 0:
            raise UplrError("the dataset to sample from is empty; check the split list and the dataset root")
        if batch_size <= 0 or total_steps < 0 or not 0 <= start_step <= total_steps:
            raise ValueError(f"bad sampler settings: batch_size={batch_size} steps={start_step}..{total_steps}")
        self.n, self.batch_size, self.total_steps = n, batch_size, total_steps
        self.seed, self.start_step, self.rank, self.world_size = seed, start_step, rank, world_size

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def global_indices(self, step: int) -> list[int]:
        raise NotImplementedError

    def indices(self, step: int) -> list[int]:
        """This rank's batch at ``step``."""
        return self.global_indices(step)[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.total_steps):
            yield self.indices(step)

    def __len__(self) -> int:
        return self.total_steps - self.start_step


class UniformStepSampler(_StepSampler):
    """Seeded random permutations, consumed ``global_batch`` positions per step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._perm_cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            if len(self._perm_cache) > 4:
                self._perm_cache.clear()
            rng = np.random.default_rng([self.seed, epoch, 0x5EED])
            self._perm_cache[epoch] = rng.permutation(self.n)
        return self._perm_cache[epoch]

    def global_indices(self, step: int) -> list[int]:
        start = step * self.global_batch
        return [int(self._perm(p // self.n)[p % self.n]) for p in range(start, start + self.global_batch)]


class WeightedStepSampler(_StepSampler):
    """Draw with replacement, P(image i) = w_i / Σ w (the soft-balance sampler)."""

    def __init__(self, weights: Sequence[float] | np.ndarray, *args, **kwargs):
        w = np.asarray(weights, dtype=np.float64)
        super().__init__(len(w), *args, **kwargs)
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise UplrError("sampling weights must be finite, non-negative and not all zero")
        self.weights = torch.as_tensor(w / w.sum())

    def global_indices(self, step: int) -> list[int]:
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, step, 0xB1A5]).generate_state(1)[0]))
        return torch.multinomial(self.weights, self.global_batch, replacement=True, generator=g).tolist()
