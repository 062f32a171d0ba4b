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

Rank agreement of two measures over the same items (CAD and memorization rate
per task) is Spearman's rank correlation,

    rho = Pearson correlation of rank(x) and rank(y)

(tied values get their mean rank), with a two-sided permutation p-value: the
share of orderings of the y ranks whose |rho| is at least the observed one
(all n! orderings for n <= 8, else 100,000 seeded random ones).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from memtasks.outcomes import RATE_NAMES, in_category

N_RESAMPLES = 1000
BOOTSTRAP_SEED = 1234
INTERVAL_PERCENTILES = (5.0, 95.0)
EXACT_UP_TO = 8
PERMUTATIONS = 100_000
PERMUTATION_SEED = 1234


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
    names = ("memorization", *categories)
    if not before and not after:
        return {name: Rate(0.0, 0.0, 0.0) for name in names}
    counts, effect = _paired_states(before, after, names)
    n = int(counts.sum())
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=n_resamples) / n
    values, resamples = counts @ effect / n, draws @ effect
    return {name: interval(values[j], resamples[:, j]) for j, name in enumerate(names)}


def difference_of_gains(
    first: tuple[Sequence[str], Sequence[str]],
    second: tuple[Sequence[str], Sequence[str]],
    categories: Sequence[str] = RATE_NAMES[1:],
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Rate]:
    """How much more fine-tuning raised the rates on one task than on another, with an interval.

    ``first`` and ``second`` are (before, after) outcomes of the same probes
    of two tasks (the paired runs of :func:`paired_difference`). For each name

        g_c = d_c(first) - d_c(second)

    The two tasks' probes are different texts, so each task's pairs are
    resampled on their own (two independent multinomial draws per resample,
    the first task's first, from one generator), as :func:`excess_rates` does
    for members and non-members. An interval that holds 0 means fine-tuning
    did not raise one task's rates more than the other's.
    """
    names = ("memorization", *categories)
    if not first[0] or not second[0]:
        raise ValueError("a difference of gains needs paired probes of both tasks")
    rng = np.random.default_rng(seed)
    (a_counts, a_effect), (b_counts, b_effect) = _paired_states(*first, names), _paired_states(*second, names)
    values = a_counts @ a_effect / a_counts.sum() - b_counts @ b_effect / b_counts.sum()
    draws = _resampled(a_counts, a_effect, rng, n_resamples) - _resampled(b_counts, b_effect, rng, n_resamples)
    return {name: interval(values[j], draws[:, j]) for j, name in enumerate(names)}


def _paired_states(before: Sequence[str], after: Sequence[str], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the distinct joint outcomes (before_i, after_i) and, for each, its +1/0/-1 row over ``names``.

    Resampling probes (pairs) with replacement makes these counts multinomial;
    states come in the order of the probes, which callers fix (by probe id).
    """
    if len(before) != len(after):
        raise ValueError(f"paired runs must score the same probes: {len(before)} outcomes before, {len(after)} after")
    joint: dict[tuple[str, str], int] = {}
    for pair in zip(before, after):
        joint[pair] = joint.get(pair, 0) + 1
    effect = np.array([[in_category(a, name) - in_category(b, name) for name in names] for b, a in joint], dtype=np.float64)
    return np.array(list(joint.values()), dtype=np.int64), effect.reshape(len(joint), len(names))


def ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values))
    ranked[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / math.sqrt((x * x).sum() * (y * y).sum()))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation; raises when either side has no spread (rho undefined)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"rank correlation needs paired values: {len(x)} and {len(y)} given")
    if len(x) < 3:
        raise ValueError(f"rank correlation needs at least 3 tasks, {len(x)} given")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("rank correlation is undefined: one of the two measures is the same for every task")
    return _pearson(ranks(x), ranks(y))


def permutation_p_value(x: Sequence[float], y: Sequence[float], rho: float) -> float:
    """Two-sided permutation p-value of ``rho`` (see the module docstring)."""
    rx, ry = ranks(x), ranks(y)
    n = len(rx)
    if n <= EXACT_UP_TO:
        orderings = np.array(list(itertools.permutations(range(n))))
    else:
        rng = np.random.default_rng(PERMUTATION_SEED)
        orderings = np.argsort(rng.random((PERMUTATIONS, n)), axis=1)
    # Pearson correlation of rx with every reordering of ry at once.
    cx = rx - rx.mean()
    cy = ry[orderings] - ry.mean()
    rhos = cy @ cx / math.sqrt((cx * cx).sum() * (ry - ry.mean()) @ (ry - ry.mean()))
    # A small tolerance keeps orderings with exactly the observed |rho| from
    # being lost to rounding.
    return float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))
