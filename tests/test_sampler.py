"""Samplers: deterministic per (seed, step), resumable, sharded across ranks, weighted by p̂."""

from __future__ import annotations

import numpy as np
import pytest

from uplr.errors import UplrError
from uplr.train.sampler import UniformStepSampler, WeightedStepSampler


def test_uniform_visits_every_image_once_per_pass():
    s = UniformStepSampler(10, batch_size=5, total_steps=4, seed=3)
    batches = list(s)
    assert sorted(batches[0] + batches[1]) == list(range(10))
    assert sorted(batches[2] + batches[3]) == list(range(10))
    assert batches[0] + batches[1] != batches[2] + batches[3]  # a new permutation per pass


def test_uniform_pass_boundary_inside_a_batch():
    s = UniformStepSampler(7, batch_size=3, total_steps=7, seed=0)
    flat = [i for b in s for i in b]
    assert sorted(flat[:7]) == list(range(7)) and sorted(flat[7:14]) == list(range(7))


@pytest.mark.parametrize("cls", ["uniform", "weighted"])
def test_resume_and_determinism(cls):
    def make(start=0, seed=1):
        if cls == "uniform":
            return UniformStepSampler(13, batch_size=4, total_steps=20, seed=seed, start_step=start)
        return WeightedStepSampler(np.arange(1, 14), batch_size=4, total_steps=20, seed=seed, start_step=start)

    full = list(make())
    assert full == list(make())
    assert list(make(start=8)) == full[8:]
    assert list(make(seed=2)) != full


@pytest.mark.parametrize("cls", ["uniform", "weighted"])
def test_ranks_shard_the_global_batch(cls):
    world = 3

    def make(rank):
        kw = dict(batch_size=2, total_steps=5, seed=7, rank=rank, world_size=world)
        if cls == "uniform":
            return UniformStepSampler(20, **kw)
        return WeightedStepSampler(np.ones(20), **kw)

    per_rank = [list(make(r)) for r in range(world)]
    ref = make(0)
    for step in range(5):
        got = sorted(i for r in range(world) for i in per_rank[r][step])
        assert got == sorted(ref.global_indices(step))
        assert all(len(per_rank[r][step]) == 2 for r in range(world))
    if cls == "uniform":  # disjoint within a pass
        first_pass = [i for r in range(world) for step in range(3) for i in per_rank[r][step]]
        assert len(first_pass[:20]) == len(set(first_pass[:20]))


def test_weighted_frequencies_follow_p_hat():
    rng = np.random.default_rng(0)
    p_hat = 0.1 + 1 / (1 + np.exp(-rng.normal(size=12)))  # the rectified weights' form
    steps, batch = 5000, 8
    s = WeightedStepSampler(p_hat, batch_size=batch, total_steps=steps, seed=0)
    counts = np.bincount([i for b in s for i in b], minlength=12)
    n = steps * batch
    expected = p_hat / p_hat.sum()
    sigma = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(counts / n - expected) < 5 * sigma)


def test_bad_inputs():
    with pytest.raises(UplrError, match="empty"):
        UniformStepSampler(0, batch_size=2, total_steps=1, seed=0)
    with pytest.raises(UplrError, match="non-negative"):
        WeightedStepSampler([1.0, -1.0], batch_size=2, total_steps=1, seed=0)
    with pytest.raises(UplrError):
        WeightedStepSampler([0.0, 0.0], batch_size=2, total_steps=1, seed=0)
