"""Rule R65's candidate (benchmarks.relative_sequential): the sequential test that also asks
a sender's record to be an outlier among the round's."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.relative_sequential import (
    RelativeSequentialFairFL,
    relative,
    relative_sequential_out,
)
from fl_agent.aggregation import FairFL
from fl_agent.aggregation.gate import sequential_out


def _records(values):
    """Sums and counts whose records T = (sum + z) / sqrt(count + 1) are ``values`` with
    z = 0 and three earlier rounds."""
    t = np.asarray(values, dtype=float)
    return t * 2.0, np.full(t.size, 3.0), np.zeros(t.size)


def test_a_sender_below_minus_two_but_within_the_rounds_spread_is_kept():
    """R64's seed 95 at its end: the two honest records at -2.11 and -2.81 sit within
    two spreads of the round's median (median 1.395, spread 1.4826 * 1.57 = 2.33: the line
    at -3.26), so only today's test turns them away."""
    t = [2.44, -1.91, 0.76, 2.03, 4.72, 0.16, -2.11, -2.81, 2.19, 3.30]
    sums, counts, z = _records(t)
    assert list(np.flatnonzero(sequential_out(sums, counts, z, 2.0))) == [6, 7]
    assert not relative_sequential_out(sums, counts, z, 2.0).any()


def test_an_outlier_below_minus_two_is_still_turned_away():
    t = [2.0, 1.5, 1.0, 2.5, 1.8, -6.0]  # median 1.65, spread max(1, 1.4826 * 0.5) = 1
    sums, counts, z = _records(t)
    assert list(np.flatnonzero(relative_sequential_out(sums, counts, z, 2.0))) == [5]


def test_it_never_turns_away_what_todays_test_keeps():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        sums, counts = rng.normal(0, 4, n), rng.integers(0, 20, n).astype(float)
        z = rng.normal(0, 1, n)
        assert not (relative_sequential_out(sums, counts, z, 2.0)
                    & ~sequential_out(sums, counts, z, 2.0)).any()


def test_the_spread_is_at_least_one_so_equal_senders_meet_todays_line_shifted():
    """All records alike but one: MAD 0, the spread floored at 1, the line at median - 2."""
    sums, counts, z = _records([0.0, 0.0, 0.0, 0.0, -2.5])
    assert list(np.flatnonzero(relative_sequential_out(sums, counts, z, 2.0))) == [4]
    sums, counts, z = _records([0.0, 0.0, 0.0, 0.0, -1.9])
    assert not relative_sequential_out(sums, counts, z, 2.0).any()  # nor today's
    assert relative_sequential_out(*_records([]), 2.0).size == 0


def test_the_candidate_keeps_every_option_of_the_rule_it_is_made_from():
    base = FairFL(tolerance=2.0, sequential=True, max_norm_ratio=None, chance_z=100.0,
                  clip_ratio=1.5)
    made = relative(base)
    assert isinstance(made, RelativeSequentialFairFL) and isinstance(made, FairFL)
    for name in ("tolerance", "sequential", "max_norm_ratio", "chance_z", "clip_ratio"):
        assert getattr(made, name) == getattr(base, name)
    sums, counts, z = _records([2.44, -1.91, 0.76, 2.03, 4.72, 0.16, -2.11, -2.81, 2.19, 3.3])
    assert list(np.flatnonzero(base.sequential_verdicts(sums, counts, z))) == [6, 7]
    assert not made.sequential_verdicts(sums, counts, z).any()
    with pytest.raises(AttributeError):
        made.tolerance = 1.0  # frozen, as FairFL is


def test_the_benchmark_counts_the_sequential_tests_refusals_from_the_rounds_figures():
    """privacy_dp's attribution: the strategy's own verdict on the figures' rows
    ``[position, z, earlier sum, earlier count]``, so today's test and the candidate are
    each counted as they decided."""
    from benchmarks.privacy_dp import sequential_refusals

    t = [2.44, -1.91, 0.76, 2.03, 4.72, 0.16, -2.11, -2.81, 2.19, 3.30]
    sums, counts, z = _records(t)
    figures = [[10 + i, z[i], sums[i], counts[i]] for i in range(len(t))]  # positions 10-19
    today = FairFL(tolerance=2.0, sequential=True, max_norm_ratio=None, chance_z=100.0)
    assert sequential_refusals(today, figures) == [16, 17]
    assert sequential_refusals(relative(today), figures) == []
    assert sequential_refusals(today, []) == []
