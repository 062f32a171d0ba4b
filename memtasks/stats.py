"""Rates of per-probe outcomes and their bootstrap intervals (numpy only).

A rate r_c is the share of probes whose outcome counts towards c
(:func:`memtasks.outcomes.in_category`). Its interval is the 5th-95th
percentile of :data:`N_RESAMPLES` bootstrap resamples of the probes, drawn
with a generator seeded with :data:`BOOTSTRAP_SEED`, so the same outcomes
always give the same interval.

Resampling n probes with replacement only changes how many probes fall in
each distinct outcome, and those counts are multinomial; so every resample is
one row of a single ``multinomial`` draw and every rate of every resample one
matrix product: no loop over resamples or probes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memtasks.outcomes import RATE_NAMES, in_category

N_RESAMPLES = 1000
BOOTSTRAP_SEED = 1234
INTERVAL_PERCENTILES = (5.0, 95.0)


@dataclass(frozen=True)
class Rate:
    """A proportion (or a difference of proportions) with its bootstrap interval.

    NaN marks what a run did not score; a NaN interval around a known value
    marks a value without an interval (a difference of unpaired runs).
    """

    value: float
    low: float
    high: float

    @classmethod
    def unscored(cls) -> Rate:
        return cls(math.nan, math.nan, math.nan)

    @property
    def scored(self) -> bool:
        return not math.isnan(self.value)

    def to_dict(self) -> dict[str, float]:
        return {"rate": self.value, "low": self.low, "high": self.high}


def interval(value: float, resamples: np.ndarray) -> Rate:
    """``value`` with the 5th-95th percentile of its ``resamples``."""
    low, high = np.percentile(resamples, INTERVAL_PERCENTILES)
    return Rate(float(value), float(low), float(high))


def _states(categories: Sequence[str], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the distinct outcomes and, for each, a 0/1 row over ``names``."""
    counts: dict[str, int] = {}
    # Sorted, so that the resamples do not depend on the order of the probes.
    for category in sorted(categories):
        counts[category] = counts.get(category, 0) + 1
    effect = np.array([[in_category(state, name) for name in names] for state in counts], dtype=np.float64)
    return np.array(list(counts.values()), dtype=np.int64), effect.reshape(len(counts), len(names))


def _resampled(counts: np.ndarray, effect: np.ndarray, rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    """Each rate of each resample: (n_resamples, len(names))."""
    n = int(counts.sum())
    return rng.multinomial(n, counts / n, size=n_resamples) @ effect / n


def rates_of(
    categories: Sequence[str], names: Sequence[str] = RATE_NAMES, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> dict[str, Rate]:
    """Each rate of ``names`` over per-probe outcomes, with the study's bootstrap interval.

    r_c = (1/n) * sum_i [outcome_i counts towards c]; no probes give rates of 0.
    """
    if not categories:
        return {name: Rate(0.0, 0.0, 0.0) for name in names}
    counts, effect = _states(categories, names)
    values = counts @ effect / counts.sum()
    draws = _resampled(counts, effect, np.random.default_rng(seed), n_resamples)
    return {name: interval(values[j], draws[:, j]) for j, name in enumerate(names)}


def excess_rates(
    members: Sequence[str],
    nonmembers: Sequence[str],
    names: Sequence[str] = RATE_NAMES,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Rate]:
    """Member minus non-member rate of each of ``names``, with an unpaired bootstrap interval.

    e_c = (1/m) * sum_i [member_i counts towards c] - (1/n) * sum_j [nonmember_j counts towards c]

    The two groups are different probes, so each is resampled on its own (two
    independent multinomial draws per resample, members first, from one
    generator). An interval that holds 0 means the members are not memorized
    more than text the model never trained on.
    """
    if not members or not nonmembers:
        raise ValueError("an excess needs member and non-member probes")
    rng = np.random.default_rng(seed)
    (m_counts, m_effect), (n_counts, n_effect) = _states(members, names), _states(nonmembers, names)
    values = m_counts @ m_effect / m_counts.sum() - n_counts @ n_effect / n_counts.sum()
    draws = _resampled(m_counts, m_effect, rng, n_resamples) - _resampled(n_counts, n_effect, rng, n_resamples)
    return {name: interval(values[j], draws[:, j]) for j, name in enumerate(names)}


def paired_difference(
    before: Sequence[str],
    after: Sequence[str],
    categories: Sequence[str] = RATE_NAMES[1:],
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Rate]:
    """Change in rates between two runs on the same probes, with paired intervals.

    ``before[i]`` and ``after[i]`` are the outcomes of the same probe i under
    two models. For ``memorization`` and each of ``categories``

        d_c = (1/n) * sum_i ([after_i counts towards c] - [before_i counts towards c])

    Resampling probes (pairs) with replacement makes the counts of the joint
    outcomes (before_i, after_i) multinomial; the interval is the 5th-95th
    percentile of the resampled differences.
    """
    if len(before) != len(after):
        raise ValueError(f"paired runs must score the same probes: {len(before)} outcomes before, {len(after)} after")
    n = len(before)
    names = ("memorization", *categories)
    if n == 0:
        return {name: Rate(0.0, 0.0, 0.0) for name in names}
    joint: dict[tuple[str, str], int] = {}
    for pair in zip(before, after):
        joint[pair] = joint.get(pair, 0) + 1
    states = list(joint)
    counts = np.array([joint[s] for s in states], dtype=np.int64)
    # Each joint state's contribution to each difference: +1, 0 or -1.
    effect = np.array(
        [[in_category(a, name) - in_category(b, name) for name in names] for b, a in states],
        dtype=np.float64,
    )
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=n_resamples) / n
    values, resamples = counts @ effect / n, draws @ effect
    return {name: interval(values[j], resamples[:, j]) for j, name in enumerate(names)}
