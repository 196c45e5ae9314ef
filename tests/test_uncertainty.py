"""Pixel entropy, class-level entropy and top-k selection against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uplr.errors import UplrError
from uplr.method.uncertainty import ClassEntropyMeter, pixel_entropy, top_k_uncertain

LN2, LN3 = math.log(2.0), math.log(3.0)
# -(0.25 ln 0.25 + 0.75 ln 0.75), in nats: 0.5623351446188083
H_25_75 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
# -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 0.5 ln 2 + ln 2 = 1.5 ln 2
H_50_25_25 = 1.5 * LN2


def _pix(*probs: tuple[float, ...]) -> torch.Tensor:
    """C x 1 x W tensor from per-pixel probability tuples."""
    return torch.tensor(probs, dtype=torch.float64).T.reshape(len(probs[0]), 1, len(probs))


def test_uniform_is_one_and_one_hot_is_zero():
    for c in (2, 3, 19):
        assert torch.allclose(pixel_entropy(torch.full((1, c, 2, 2), 1.0 / c)), torch.ones(1, 2, 2))
    one_hot = torch.nn.functional.one_hot(torch.tensor([[0, 2], [1, 18]]), 19).permute(2, 0, 1)[None].float()
    ent = pixel_entropy(one_hot)
    assert not torch.isnan(ent).any()
    assert torch.equal(ent, torch.zeros(1, 2, 2))


def test_two_and_three_class_by_hand():
    ent = pixel_entropy(torch.tensor([[0.25, 0.75]]), dim=1)
    assert ent.item() == pytest.approx(0.8112781244591328, rel=1e-6)  # H_25_75 / ln 2
    assert ent.item() == pytest.approx(H_25_75 / LN2, rel=1e-6)
    # (0.5, 0.25, 0.25): 1.5 ln2 / ln3 = 0.9463946303571863
    ent3 = pixel_entropy(torch.tensor([[0.5, 0.25, 0.25], [0.0, 0.5, 0.5]], dtype=torch.float64))
    assert ent3[0].item() == pytest.approx(0.9463946303571863, rel=1e-12)
    # (0, 0.5, 0.5): 0 log 0 = 0, so ln2 / ln3 = 0.6309297535714575
    assert ent3[1].item() == pytest.approx(0.6309297535714575, rel=1e-12)


def test_class_dim_and_single_class():
    prob = torch.tensor([[[0.25, 0.75]]])  # 1 x 1 x C=2, channels last
    assert pixel_entropy(prob, dim=-1).item() == pytest.approx(H_25_75 / LN2, rel=1e-6)
    assert torch.equal(pixel_entropy(torch.ones(2, 1, 3, 3)), torch.zeros(2, 3, 3))
    assert pixel_entropy(torch.tensor([[0.25, 0.75]], dtype=torch.bfloat16)).dtype == torch.float32


def _two_image_batch() -> torch.Tensor:
    # image 1: (0.5, .25, .25) -> argmax 0, I = 1.5 ln2/ln3;  (1, 0, 0) -> argmax 0, I = 0
    # image 2: (.25, .5, .25) -> argmax 1, I = 1.5 ln2/ln3;  (.25, .75, 0) -> argmax 1, I = H_25_75/ln3
    img1 = _pix((0.5, 0.25, 0.25), (1.0, 0.0, 0.0))
    img2 = _pix((0.25, 0.5, 0.25), (0.25, 0.75, 0.0))
    return torch.stack([img1, img2])  # 2 x 3 x 1 x 2


def test_class_entropy_by_hand():
    meter = ClassEntropyMeter(3)
    meter.update(_two_image_batch())
    expected0 = (H_50_25_25 / LN3 + 0.0) / 2
    expected1 = (H_50_25_25 / LN3 + H_25_75 / LN3) / 2
    value = meter.value
    assert value[0] == pytest.approx(expected0, rel=1e-12)
    assert value[1] == pytest.approx(expected1, rel=1e-12)
    assert np.isnan(value[2])  # class 2 is never the argmax
    assert meter.counts.tolist() == [2, 2, 0]
    assert meter.counts.dtype == np.int64 and meter.sums.dtype == np.float64


def test_valid_mask_drops_pixels():
    meter = ClassEntropyMeter(3)
    valid = torch.tensor([[[True, False]], [[True, True]]])  # drop the certain (1, 0, 0) pixel
    meter.update(_two_image_batch(), valid=valid)
    assert meter.counts.tolist() == [1, 2, 0]
    assert meter.value[0] == pytest.approx(H_50_25_25 / LN3, rel=1e-12)
    with pytest.raises(UplrError, match="valid mask"):
        meter.update(_two_image_batch(), valid=torch.ones(2, 2, 1, dtype=torch.bool))


def _reference_class_entropy(prob: np.ndarray, num_classes: int) -> np.ndarray:
    """Plain loops over pixels, independent of the meter's vectorised code."""
    sums, counts = [0.0] * num_classes, [0] * num_classes
    n, c, h, w = prob.shape
    for b in range(n):
        for y in range(h):
            for x in range(w):
                p = prob[b, :, y, x]
                ent = -sum(v * math.log(v) for v in p if v > 0) / math.log(c)
                k = int(np.argmax(p))
                sums[k] += ent
                counts[k] += 1
    return np.array([s / n_ if n_ else np.nan for s, n_ in zip(sums, counts, strict=True)])


def test_streaming_equals_one_shot_and_reference():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, 3, 4, generator=gen, dtype=torch.float64) * 2
    logits[:, 4] -= 100  # class 4 is never predicted
    prob = logits.softmax(dim=1)
    one_shot = ClassEntropyMeter(5)
    one_shot.update(prob)
    streamed = ClassEntropyMeter(5)
    for img in prob:  # C x H x W, one at a time
        streamed.update(img)
    half_a, half_b = ClassEntropyMeter(5), ClassEntropyMeter(5)
    half_a.update(prob[:2])
    half_b.update(prob[2:])
    merged = half_a.merge(half_b)
    ref = _reference_class_entropy(prob.numpy(), 5)
    for m in (one_shot, streamed, merged):
        np.testing.assert_allclose(m.value, ref, rtol=1e-12, equal_nan=True)
        assert m.counts.sum() == 4 * 3 * 4
    assert np.isnan(one_shot.value[4])
    restored = ClassEntropyMeter.from_state_dict(one_shot.state_dict())
    np.testing.assert_array_equal(restored.counts, one_shot.counts)
    np.testing.assert_allclose(restored.value, ref, rtol=1e-12, equal_nan=True)


def test_meter_rejects_wrong_class_count():
    with pytest.raises(UplrError, match="classes"):
        ClassEntropyMeter(4).update(_two_image_batch())
    with pytest.raises(UplrError, match="merge"):
        ClassEntropyMeter(4).merge(ClassEntropyMeter(3))


def _all_reduce_worker(rank: int, init_file: str, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        meter = ClassEntropyMeter(3)
        meter.update(_two_image_batch()[rank])  # rank 0 sees image 1, rank 1 image 2
        meter.all_reduce()
        results[rank] = (meter.counts.tolist(), meter.value.tolist())
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_all_reduce_sums_across_ranks(tmp_path):
    assert ClassEntropyMeter(3).all_reduce().counts.tolist() == [0, 0, 0]  # no process group: no-op
    ctx = torch.multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.dict()
        torch.multiprocessing.start_processes(
            _all_reduce_worker, args=(str(tmp_path / "init"), results), nprocs=2, start_method="spawn"
        )
        results = dict(results)
    for rank in (0, 1):
        counts, value = results[rank]
        assert counts == [2, 2, 0]
        assert value[0] == pytest.approx(H_50_25_25 / LN3 / 2, rel=1e-12)
        assert value[1] == pytest.approx((H_50_25_25 + H_25_75) / LN3 / 2, rel=1e-12)
        assert math.isnan(value[2])


def test_top_k_ties_and_nan_policy():
    ent = [0.2, float("nan"), 0.5, 0.5, 0.1]
    assert top_k_uncertain(ent, 2) == [1, 2]  # NaN = never predicted = most uncertain
    assert top_k_uncertain(ent, 2, nan_policy="last") == [2, 3]  # tie 0.5/0.5 -> lower id first
    assert top_k_uncertain(ent, 3, nan_policy="last") == [2, 3, 0]
    assert top_k_uncertain(ent, 10, nan_policy="last") == [2, 3, 0, 4, 1]
    assert top_k_uncertain(ent, 10) == [1, 2, 3, 0, 4]
    assert top_k_uncertain(ent, 0) == []
    assert top_k_uncertain(ent, 2, classes=[4, 3, 0]) == [3, 0]
    assert top_k_uncertain(np.full(4, 0.3), 3) == [0, 1, 2]
    assert top_k_uncertain([float("nan")] * 3 + [0.9], 2) == [0, 1]
    with pytest.raises(UplrError, match="nan_policy"):
        top_k_uncertain(ent, 2, nan_policy="drop")
    with pytest.raises(UplrError, match="k must be"):
        top_k_uncertain(ent, -1)
    with pytest.raises(UplrError, match="class id 7"):
        top_k_uncertain(ent, 2, classes=[7])


def test_top_k_over_source_candidates_skips_absent_classes_even_when_nan_ranks_first():
    """SYNTHIA-like: classes 9, 14, 16 have no source pixel; never predicted (NaN) they would rank first."""
    from uplr.method.tgaa import tgaa_candidates

    counts = np.ones((2, 19), dtype=np.int64)
    counts[:, [9, 14, 16]] = 0
    ent = np.linspace(0.1, 0.9, 19)
    ent[[9, 14, 16]] = np.nan
    assert top_k_uncertain(ent, 5) == [9, 14, 16, 18, 17]  # without the candidates: 3 wasted slots
    assert top_k_uncertain(ent, 5, classes=tgaa_candidates(counts)) == [18, 17, 15, 13, 12]
