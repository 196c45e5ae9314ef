"""Paired differences over seeds: is a component's gain shown, or within the seeds' noise?

Two rows trained with the same seed share their data order and initialisation up to the component
that differs, so their per-seed difference d_s = row_s − parent_s is the fair comparison (a paired
test), not the difference of their means with each row's own spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedDelta:
    mean: float  # mean of the per-seed differences
    low: float  # 95% t-interval of the mean difference (NaN for fewer than two seeds)
    high: float
    n: int  # seeds present in both rows

    @property
    def shown(self) -> bool:
        """Whether the interval excludes 0 (a gain or a loss the seeds do not explain)."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)


def paired_t_interval(row: dict[int, float], parent: dict[int, float], level: float = 0.95) -> PairedDelta:
    """Mean and t-interval of d_s = row_s − parent_s over the seeds s that both have.

    mean ± t_{(1+level)/2, n−1} · sd / √n, sd the sample standard deviation (n − 1) of the d_s.
    """
    from scipy.stats import t as student_t

    seeds = sorted(s for s in row if s in parent and not math.isnan(row[s]) and not math.isnan(parent[s]))
    d = [row[s] - parent[s] for s in seeds]
    n = len(d)
    if n == 0:
        return PairedDelta(math.nan, math.nan, math.nan, 0)
    mean = sum(d) / n
    if n < 2:
        return PairedDelta(mean, math.nan, math.nan, n)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = student_t.ppf((1 + level) / 2, n - 1) * sd / math.sqrt(n)
    return PairedDelta(mean, mean - half, mean + half, n)


def fmt_paired(p: PairedDelta, digits: int = 1) -> str:
    """``+1.2 [0.3, 2.1]``; ``+0.4 [-0.5, 1.3], not shown`` when the interval spans 0."""
    if p.n == 0:
        return "not run"
    if p.n < 2:
        return f"{p.mean:+.{digits}f} (1 seed: no interval)"
    text = f"{p.mean:+.{digits}f} [{p.low:+.{digits}f}, {p.high:+.{digits}f}]"
    return text if p.shown else f"{text}, not shown"
