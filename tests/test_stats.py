"""The paired t-interval, by hand."""

from __future__ import annotations

import math

import pytest

from uplr.report.stats import fmt_paired, paired_t_interval


def test_paired_interval_by_hand():
    # d = [1, 2, 3]: mean 2, sd 1, t_{0.975, 2} = 4.302652729911275, half = 4.3027 / sqrt(3) = 2.48414
    p = paired_t_interval({0: 11.0, 1: 12.0, 2: 13.0, 7: 99.0}, {0: 10.0, 1: 10.0, 2: 10.0})
    assert p.n == 3 and p.mean == pytest.approx(2.0)
    assert p.low == pytest.approx(2 - 2.484138, abs=1e-5) and p.high == pytest.approx(2 + 2.484138, abs=1e-5)
    assert not p.shown  # [-0.48, 4.48] spans 0
    assert fmt_paired(p) == "+2.0 [-0.5, +4.5], not shown"


def test_paired_interval_shown_and_degenerate_cases():
    # d = [1.0, 1.2, 0.8, 1.1, 0.9]: mean 1.0, sd 0.158114, t_{0.975,4} = 2.776445, half = 0.196324
    row = {s: 50 + d for s, d in enumerate([1.0, 1.2, 0.8, 1.1, 0.9])}
    p = paired_t_interval(row, {s: 50.0 for s in range(5)})
    assert p.shown and p.low == pytest.approx(1 - 0.196324, abs=1e-5)
    assert fmt_paired(p) == "+1.0 [+0.8, +1.2]"
    one = paired_t_interval({0: 3.0}, {0: 1.0})
    assert one.n == 1 and math.isnan(one.low) and fmt_paired(one) == "+2.0 (1 seed: no interval)"
    assert fmt_paired(paired_t_interval({0: 1.0}, {1: 1.0})) == "not run"
    assert paired_t_interval({0: math.nan, 1: 2.0}, {0: 1.0, 1: 1.0}).n == 1
