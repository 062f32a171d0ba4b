"""memtasks.stats: rates of per-probe outcomes, the excess over the non-member floor and paired differences,
with their bootstrap intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from memtasks.outcomes import RATE_METRICS, RATE_NAMES, read_probe_outcomes
from memtasks.stats import Rate, difference_of_gains, excess_rates, paired_difference, rates_of

RESULTS = Path(__file__).parents[1] / "results"
COMMITTED = sorted(RESULTS.glob("*/runs/**/results_*.json"))


# --------------------------------------------------------------------------- rates and their intervals


def test_rates_are_seeded_and_independent_of_probe_order():
    outcomes = ["verbatim"] * 31 + ["idea"] * 17 + ["paraphrase_high"] * 9 + ["none"] * 1234
    a = rates_of(outcomes, seed=7)
    assert a == rates_of(list(reversed(outcomes)), seed=7)
    assert a != rates_of(outcomes, seed=8)
    assert a["memorization"].value == pytest.approx(57 / 1291)
    # A graded paraphrase is a paraphrase too.
    assert a["paraphrase"].value == a["paraphrase_high"].value == pytest.approx(9 / 1291)
    assert a["paraphrase_low"].value == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_middle_of_the_interval_is_close_to_the_observed_rate(seed):
    # Totals are Binomial(n, p) / n with p = 0.3 and n = 100: the 5th and 95th
    # percentiles sit about 1.645 sqrt(p (1 - p) / n) = 0.075 either side.
    outcomes = ["verbatim"] * 15 + ["idea"] * 10 + ["paraphrase_low"] * 5 + ["none"] * 70
    total = rates_of(outcomes, seed=seed)["memorization"]
    assert (total.low + total.high) / 2 == pytest.approx(0.3, abs=0.02)
    assert total.high - total.low == pytest.approx(0.15, abs=0.03)


def test_no_memorization_gives_zero_intervals():
    rates = rates_of(["none"] * 25)
    assert all((r.value, r.low, r.high) == (0.0, 0.0, 0.0) for r in rates.values())


def test_all_memorized_gives_unit_interval():
    rates = rates_of(["verbatim"] * 25)
    assert (rates["memorization"].value, rates["memorization"].low, rates["memorization"].high) == (1.0, 1.0, 1.0)
    assert (rates["verbatim"].low, rates["verbatim"].high) == (1.0, 1.0)
    assert (rates["idea"].value, rates["idea"].high) == (0.0, 0.0)


def test_all_memorized_in_mixed_categories_has_a_fixed_total():
    # Resampling moves probes between categories but every resample is fully memorized.
    rates = rates_of(["verbatim", "idea", "paraphrase_low"] * 10)
    assert (rates["memorization"].value, rates["memorization"].low, rates["memorization"].high) == (1.0, 1.0, 1.0)
    assert rates["idea"].low < rates["idea"].value < rates["idea"].high


def test_rates_of_no_probes_are_zero():
    assert set(rates_of([])) == set(RATE_NAMES)
    assert all((r.value, r.low, r.high) == (0.0, 0.0, 0.0) for r in rates_of([]).values())


def test_excess_is_member_minus_non_member_rate_with_an_unpaired_interval():
    members = ["verbatim"] * 12 + ["paraphrase_low"] * 4 + ["none"] * 24
    nonmembers = ["paraphrase_low"] * 4 + ["none"] * 36
    excess = excess_rates(members, nonmembers)
    assert excess["memorization"].value == pytest.approx(16 / 40 - 4 / 40)
    assert excess["verbatim"].low > 0
    assert excess["paraphrase"].value == pytest.approx(0.0)
    assert excess["paraphrase"].low < 0 < excess["paraphrase"].high
    assert excess == excess_rates(members, nonmembers)
    same = excess_rates(nonmembers, nonmembers)
    assert same["memorization"].low < 0 < same["memorization"].high
    with pytest.raises(ValueError, match="member and non-member"):
        excess_rates(members, [])




def test_paired_difference_is_the_change_in_rates_with_a_paired_interval():
    before = ["none"] * 6 + ["verbatim"] * 2 + ["idea"] * 2
    after = ["verbatim"] * 4 + ["none"] * 2 + ["verbatim"] * 2 + ["paraphrase"] * 2
    diff = paired_difference(before, after)
    assert diff["memorization"].value == pytest.approx(0.8 - 0.4)
    assert diff["verbatim"].value == pytest.approx(0.6 - 0.2)
    assert diff["idea"].value == pytest.approx(-0.2)
    assert diff["paraphrase"].value == pytest.approx(0.2)
    for rate in diff.values():
        assert rate.low <= rate.value <= rate.high


def test_paired_difference_of_identical_runs_has_a_zero_width_interval():
    outcomes = ["none", "verbatim", "idea", "none", "paraphrase"] * 20
    diff = paired_difference(outcomes, outcomes)
    # Pairing removes the between-probe variance an unpaired interval would keep.
    assert all((r.value, r.low, r.high) == (0.0, 0.0, 0.0) for r in diff.values())


def test_paired_difference_interval_matches_resampling_probes():
    rng = np.random.default_rng(0)
    before = rng.choice(["none", "verbatim"], size=400, p=[0.8, 0.2])
    after = np.where(rng.random(400) < 0.3, "verbatim", before)
    diff = paired_difference(list(before), list(after))["memorization"]
    index = rng.integers(0, 400, size=(2000, 400))
    direct = ((after[index] != "none").mean(axis=1) - (before[index] != "none").mean(axis=1))
    low, high = np.percentile(direct, [5, 95])
    assert diff.low == pytest.approx(low, abs=0.01)
    assert diff.high == pytest.approx(high, abs=0.01)


def test_a_difference_of_gains_resamples_each_tasks_pairs_on_its_own():
    rng = np.random.default_rng(1)
    first_before = rng.choice(["none", "paraphrase_low"], size=300, p=[0.9, 0.1])
    first_after = np.where(rng.random(300) < 0.4, "verbatim", first_before)
    second_before = rng.choice(["none", "paraphrase_low"], size=200, p=[0.95, 0.05])
    second_after = np.where(rng.random(200) < 0.05, "paraphrase_high", second_before)
    gap = difference_of_gains((list(first_before), list(first_after)), (list(second_before), list(second_after)), categories=("high_confidence",))
    gain = lambda b, a: np.mean(a != "none") - np.mean(b != "none")  # noqa: E731
    assert gap["memorization"].value == pytest.approx(gain(first_before, first_after) - gain(second_before, second_after))
    # Resampled directly: each task's probes (pairs) drawn with replacement on their own.
    i, j = rng.integers(0, 300, size=(2000, 300)), rng.integers(0, 200, size=(2000, 200))
    direct = ((first_after[i] != "none").mean(1) - (first_before[i] != "none").mean(1)) - (
        (second_after[j] != "none").mean(1) - (second_before[j] != "none").mean(1)
    )
    low, high = np.percentile(direct, [5, 95])
    assert gap["memorization"].low == pytest.approx(low, abs=0.015) and gap["memorization"].high == pytest.approx(high, abs=0.015)
    # Low-confidence paraphrases are not high-confidence memorization: only the verbatim and paraphrase_high gains count.
    assert gap["high_confidence"].value == pytest.approx(np.mean(first_after == "verbatim") - np.mean(second_after == "paraphrase_high"))


def test_a_difference_of_gains_needs_probes_of_both_tasks():
    with pytest.raises(ValueError, match="both tasks"):
        difference_of_gains((["none"], ["verbatim"]), ([], []))


def test_paired_difference_needs_the_same_probes():
    with pytest.raises(ValueError, match="same probes"):
        paired_difference(["none"], ["none", "idea"])


def test_an_unscored_rate_is_nan_and_says_so():
    assert not Rate.unscored().scored and Rate(0.0, 0.0, 0.0).scored


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(RESULTS).parts[0]) + "/" + p.relative_to(RESULTS).parts[2])
def test_the_committed_rates_and_intervals_are_reproduced_from_the_logged_outcomes(path):
    # The committed runs were scored before the bootstrap moved here: the same
    # outcomes must still give the very same numbers, bounds included.
    metrics = next(iter(json.loads(path.read_text(encoding="utf-8"))["results"].values()))
    [samples] = path.parent.glob("samples_*.jsonl")
    members = list(read_probe_outcomes(samples).values())
    nonmembers = list(read_probe_outcomes(samples, members=False).values())
    for family, rates in (("", rates_of(members)), ("excess_", excess_rates(members, nonmembers))):
        for metric, name in RATE_METRICS.items():
            logged = [metrics[f"{family}{metric}{bound},none"] for bound in ("", "_low", "_high")]
            assert [rates[name].value, rates[name].low, rates[name].high] == logged, f"{family}{metric}"
