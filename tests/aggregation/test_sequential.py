"""FairFL's sequential test for DP tasks (a new DP task's default since 2026-12-05): the
noise control with one draw's luck counted
(:func:`noise_margin` with several pairs), each update's z-score against noise of its size
(:func:`noise_evidence`), and the test on a sender's z-scores summed over its rounds
(:func:`sequential_out`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_agent.aggregation import FairFL, Reason
from fl_agent.aggregation.base import prepare_round
from fl_agent.aggregation.gate import (
    SEQUENTIAL_DRAWS,
    Z_CAP,
    noise_evidence,
    noise_margin,
    sequential_out,
    standard_error,
    update_noise,
)
from fl_agent.errors import ConfigError

D = 400


def _examples_around(target, spread=0.05, m=64):
    """Per-example scores: minus each validation example's squared distance to the model,
    the examples' optima scattered around ``target``."""
    scatter = np.random.default_rng(1).normal(0.0, spread, (m, len(target)))
    examples = target + scatter - scatter.mean(axis=0)
    return lambda v: -np.square(examples - np.asarray(v, dtype=float)).sum(axis=1)


def _target():
    target = np.zeros(D)
    target[0] = 1.0
    return target


def test_one_pair_is_the_gates_antithetic_test_by_hand():
    score = _examples_around(_target())
    point = np.full(D, 0.1)
    candidate = score(point + 0.2 * _target())
    mean, spread = noise_margin(candidate, point, [0.5, 0.25], 3.0, score,
                                np.random.default_rng(9))
    rng = np.random.default_rng(9)  # the same draws, made here by hand
    z = (0.5 * rng.standard_normal(D) + 0.25 * rng.standard_normal(D)) / 3.0
    d = candidate - (score(point + z) + score(point - z)) / 2
    assert mean == pytest.approx(d.mean(), rel=1e-12)
    assert spread == pytest.approx(np.std(d, ddof=1) / math.sqrt(d.size), rel=1e-12)


def test_more_pairs_add_one_draws_luck_to_the_spread():
    """On a linear score every antithetic pair averages to the point's own score (no
    second-order term), but each draw's first-order effect is its luck: with 8 pairs the
    spread's square is the examples' standard error squared plus the mean square of the
    pairs' half-differences, computed here from the same draws."""
    direction = np.random.default_rng(0).normal(0.0, 1.0, D)
    offsets = np.random.default_rng(1).normal(0.0, 0.01, 32)

    def score(v):
        return offsets + float(direction @ np.asarray(v, dtype=float))

    point = np.zeros(D)
    candidate = score(point + 0.01 * direction)
    mean, spread = noise_margin(candidate, point, [1.0], 1.0, score,
                                np.random.default_rng(5), draws=8)
    rng = np.random.default_rng(5)
    luck = [float(direction @ rng.standard_normal(D)) for _ in range(8)]
    d = candidate - score(point)
    assert mean == pytest.approx(d.mean(), abs=1e-9)
    assert spread ** 2 == pytest.approx(standard_error(d) ** 2 + np.mean(np.square(luck)),
                                        rel=1e-9)
    assert spread > 10 * standard_error(d)  # the luck dwarfs the examples' noise here


def test_the_spread_counts_each_pairs_luck_and_the_pairs_spread_by_hand():
    """On a quadratic score both terms are there: the spread's square is the standard error
    of the paired differences, plus the mean over pairs of the square of each pair's mean
    half-difference (first order, one number per pair), plus the variance of the pairs'
    means times 1 + 1/8 (second order), all computed here from the same draws."""
    score = _examples_around(_target())
    point = np.full(D, 0.3)
    candidate = score(point + 0.1 * _target())
    mean, spread = noise_margin(candidate, point, [0.8], 2.0, score,
                                np.random.default_rng(11), draws=8)
    rng = np.random.default_rng(11)
    plus, minus = [], []
    for _ in range(8):
        z = 0.8 * rng.standard_normal(D) / 2.0
        plus.append(score(point + z))
        minus.append(score(point - z))
    a, b = np.array(plus), np.array(minus)
    pairs = (a + b) / 2
    d = candidate - pairs.mean(axis=0)
    first = np.mean([((a[j] - b[j]).mean() / 2) ** 2 for j in range(8)])
    second = np.var([pairs[j].mean() for j in range(8)], ddof=1)
    assert first > 0 and second > 0
    assert mean == pytest.approx(d.mean(), rel=1e-12)
    assert spread ** 2 == pytest.approx(
        np.var(d, ddof=1) / d.size + first + second * (1 + 1 / 8), rel=1e-9)


def test_noise_evidence_is_the_aggregate_with_against_without_by_hand():
    """One position's z-score by hand, with unequal weights and a clip factor: the others'
    weighted sum, the scale of the others plus this one, noise of this one's weighted size,
    the same draws."""
    target = _target()
    score = _examples_around(target)
    rng = np.random.default_rng(6)
    deltas = 0.2 * target + rng.normal(0.0, math.sqrt(1.0 / D), (4, D))
    weights = np.array([1.0, 3.0, 2.0, 5.0])
    factors = np.array([1.0, 0.5, 1.0, 1.0])
    control = update_noise(deltas * factors[:, None])
    z = noise_evidence([0, 1, 3], deltas, weights, score, np.zeros(D), control,
                       np.random.default_rng(8), 2, np.arange(4), factors)
    # position 1 is kept: judged against the others kept (0 and 3), at the scale 1 + 3 + 5
    others = weights[0] * deltas[0] + weights[3] * deltas[3]
    own = weights[1] * factors[1] * deltas[1]
    scale = 9.0
    draws = np.random.default_rng(8)
    for _ in range(2):  # position 0's two pairs come first
        draws.standard_normal(D)
    mean, spread = noise_margin(score((others + own) / scale), others / scale,
                                [control[1] * weights[1]], scale, score, draws, 2)
    assert z[1] == pytest.approx(mean / spread, rel=1e-12)
    # position 2 was not kept: judged against all the kept, at the scale 1 + 3 + 5 + 2
    assert np.isfinite(z[2]) and z[2] > 0


def test_a_non_finite_candidate_scores_minus_infinity_after_the_draws():
    score = _examples_around(_target())
    rng = np.random.default_rng(0)
    assert noise_margin(np.full(64, np.nan), np.zeros(D), [1.0], 1.0, score, rng,
                        draws=2) == (-math.inf, 0.0)
    # the draws were made, so the stream does not depend on the candidate's value
    after = rng.standard_normal()
    fresh = np.random.default_rng(0)
    for _ in range(2):  # one draw per pair
        fresh.standard_normal(D)
    assert after == fresh.standard_normal()


def test_noise_evidence_scores_helpful_noisy_updates_up_and_harmful_ones_down():
    """Four noisy updates towards the target and one away from it, all kept: each is
    scored against the aggregate of the others, the helpful ones well above 0 and the
    harmful one well below; a position without noise has no score."""
    target = _target()
    score = _examples_around(target)
    rng = np.random.default_rng(3)
    deltas = 0.3 * target + rng.normal(0.0, math.sqrt(1.0 / D), (6, D))
    deltas[4] -= 0.6 * target
    control = update_noise(deltas)
    control[5] = 0.0
    z = noise_evidence(list(range(6)), deltas, np.ones(6), score, np.zeros(D), control,
                       np.random.default_rng(4), SEQUENTIAL_DRAWS, np.arange(6), np.ones(6))
    assert (z[:4] > 2).all(), z
    assert z[4] < -2, z
    assert np.isnan(z[5])


def test_noise_evidence_caps_a_non_finite_score():
    def score(v):
        return np.full(64, -np.inf) if np.asarray(v)[0] > 0.5 else np.zeros(64)

    deltas = np.zeros((2, D))
    deltas[0, 0] = 4.0
    deltas[1, 1] = 0.1
    z = noise_evidence([1], deltas, np.ones(2), score, np.zeros(D), update_noise(deltas),
                       np.random.default_rng(0), 2, np.arange(2), np.ones(2))
    assert z[0] == -Z_CAP


def test_sequential_out_sums_the_senders_rounds():
    # (-3 - 1) / sqrt(4) = -2 is not below -2; -2.5 / 1 is; (3 - 1) / 2 = 1 is not
    out = sequential_out(np.array([-3.0, 0.0, 3.0]), np.array([3, 0, 3]),
                         np.array([-1.0, -2.5, -1.0]), 2.0)
    assert out.tolist() == [False, True, False]


def _rounds(sequential, base, bad_signal=-0.15, rounds=15, n=8):
    """``rounds`` rounds of FairFL as a DP task's aggregator runs it, on ``n`` updates that
    each move the model by 0.3 x (signal towards the target + noise of squared length 4),
    signal 0.3 for seven senders and ``bad_signal`` for the last; the senders' z-scores
    are carried from round to round as the aggregator carries them. Returns, per round,
    the rejected senders and whether the gate itself had kept the last sender."""
    target = _target()
    evaluate = _examples_around(target)
    strategy = FairFL(chance_z=math.sqrt(D), similarity_z=100.0, noise_control=True,
                      sequential=sequential)
    g = np.zeros(D, dtype=np.float32)
    record = np.zeros((n, 2))
    history = []
    for number in range(rounds):
        noise = np.random.default_rng(base + number).normal(0.0, math.sqrt(4.0 / D), (n, D))
        signal = np.full(n, 0.3)
        signal[-1] = bad_signal
        updates = (g + 0.3 * (signal[:, None] * (target - g) + noise)).astype(np.float32)
        result = strategy.aggregate_round(prepare_round(g, updates, np.ones(n), evidence=record),
                                          evaluate)
        figures = result.figures
        gate_kept = ({i for step in figures["gate"] for i in step["kept"]}
                     - set(figures["dropped"])) | set(figures["rescued"])
        for i, z, total, count in figures.get("sequential", ()):
            assert (total, count) == tuple(record[i])  # the sums it was judged with
            record[i] += (z, 1)
        history.append((set(result.rejected), n - 1 in gate_kept, dict(result.reasons)))
        g = np.asarray(result.params, dtype=np.float32)
    return history


@pytest.mark.parametrize("base", [100, 200, 300])
def test_the_sum_turns_away_a_sender_whose_updates_hurt_round_after_round(base):
    """A sender whose updates are mostly noise with a small harmful signal: the single
    round's test (with the draw's luck in its spread) lets it in most rounds; the sum over
    its rounds turns it away in every one of the last five, and keeps doing so where the
    gate had kept it. No honest sender is ever turned away."""
    history = _rounds(True, base)
    assert all(rejected <= {7} for rejected, _, _ in history), history
    assert all(7 in rejected for rejected, _, _ in history[-5:]), history
    by_the_sum = [r for r, (rejected, kept, _) in enumerate(history) if 7 in rejected and kept]
    assert len(by_the_sum) >= 5, history
    assert all(reasons[7] == Reason.VALIDATION for rejected, _, reasons in history
               if 7 in rejected)


def test_without_the_option_no_sums_are_kept():
    history = _rounds(False, 100, rounds=2)
    assert history  # ran
    strategy = FairFL(noise_control=True, chance_z=math.sqrt(D), similarity_z=100.0)
    g = np.zeros(D, dtype=np.float32)
    updates = (g + np.random.default_rng(0).normal(0.0, 0.1, (5, D))).astype(np.float32)
    result = strategy.aggregate(g, updates, np.ones(5), _examples_around(_target()))
    assert "sequential" not in result.figures


def test_a_senders_record_alone_can_turn_its_update_away():
    """The same round twice: with no record every update is kept but the free rider at
    index 0 (so the gate's positions are the round's indices less one); with the record of
    the sender at index 3 at -10 over four rounds, that update is turned away, and the
    figures hold the record under the round's indices."""
    target = _target()
    evaluate = _examples_around(target)
    rng = np.random.default_rng(2)
    g = np.zeros(D, dtype=np.float32)
    updates = (0.3 * target + rng.normal(0.0, math.sqrt(1.0 / D), (7, D))).astype(np.float32)
    updates[0] = g  # a free rider: out before the gate
    strategy = FairFL(chance_z=math.sqrt(D), similarity_z=100.0, noise_control=True,
                      sequential=True)
    clean = strategy.aggregate_round(prepare_round(g, updates, np.ones(7)), evaluate)
    assert clean.accepted == tuple(range(1, 7))
    record = np.zeros((7, 2))
    record[3] = (-10.0, 4)
    record[0] = (-10.0, 4)  # the free rider's record changes nothing
    judged = strategy.aggregate_round(prepare_round(g, updates, np.ones(7), evidence=record),
                                      evaluate)
    assert judged.rejected == (0, 3)
    assert judged.reasons[3] == Reason.VALIDATION and judged.reasons[0] == Reason.FREE_RIDER
    rows = {row[0]: row for row in judged.figures["sequential"]}
    assert sorted(rows) == list(range(1, 7))
    assert rows[3][2:] == [-10.0, 4] and rows[1][2:] == [0.0, 0]


@pytest.mark.parametrize("evidence", [np.zeros((5, 2)), np.zeros((6, 3)),
                                      np.array([[np.nan, 1]] * 6), np.array([[0.0, -1]] * 6)])
def test_a_malformed_record_is_refused(evidence):
    with pytest.raises(ConfigError, match="evidence"):
        prepare_round(np.zeros(4), np.ones((6, 4)), np.ones(6), evidence=evidence)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_sequential_is_a_boolean(value):
    with pytest.raises(ConfigError):
        FairFL(sequential=value)
