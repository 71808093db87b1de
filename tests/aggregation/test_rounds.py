"""One round's decision (fl_agent.aggregation.rounds): what a false sample count or copied
accounts can buy in a round, worked by hand and on crafted rounds."""

from __future__ import annotations

import numpy as np
import pytest
from crafted import crafted_round

from fl_agent.aggregation import get_strategy
from fl_agent.aggregation.rounds import (
    COPY_CLOSENESS,
    capped_claims,
    copy_groups,
    decide_round,
    delta_gram,
    round_weights,
)
from fl_agent.errors import ConfigError


def test_a_claim_is_capped_at_the_median_of_the_others():
    # others of 10: (50, 60, 1e6) -> 60; of 50: (10, 60, 1e6) -> 60; of 60: (10, 50, 1e6)
    # -> 50; of 1e6: (10, 50, 60) -> 50.
    np.testing.assert_array_equal(capped_claims([10, 50, 60, 1e6]), [10, 50, 50, 50])
    # An even number of others: the upper middle claim, never an average (others of 100:
    # (10, 20, 90, 200) -> 90).
    np.testing.assert_array_equal(capped_claims([10, 20, 90, 100, 200]), [10, 20, 90, 90, 90])
    np.testing.assert_array_equal(capped_claims([7]), [7])
    np.testing.assert_array_equal(capped_claims([30, 1e6]), [30, 30])


def test_raising_a_claim_above_every_cap_changes_no_weight():
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(3000):
        claims = rng.integers(1, 100, size=int(rng.integers(2, 12))).astype(float)
        caps = capped_claims(claims)
        i = int(rng.integers(claims.size))
        others = [np.sort(np.delete(claims, j))[(claims.size - 1) // 2]
                  for j in range(claims.size) if j != i]
        if all(claims[i] > cap for cap in others):
            lied = claims.copy()
            lied[i] = 1e6
            np.testing.assert_array_equal(capped_claims(lied), caps)
            checked += 1
    assert checked > 500


def test_copies_are_linked_through_chains_of_close_deltas():
    g = np.ones(6)
    updates = g + np.array([[1.0, 0, 0, 0, 0, 0],
                            [1.0, 0.4, 0, 0, 0, 0],  # cosine 0.93 to the first
                            [1.0, 0.9, 0, 0, 0, 0],  # 0.94 to the second, 0.74 to the first
                            [0, 0, 1.0, 0, 0, 0],
                            [0, 0, 0, 1.0, 0, 0],
                            [0, 0, 0, 0, 1.0, 0],
                            [0, 0, 0, 0, 0, 0]])  # does not move the model: alone
    # Most pairs are orthogonal: the median cosine distance is 1, so pairs within 0.1 link.
    assert COPY_CLOSENESS == 0.1
    labels = copy_groups(g, updates)
    assert labels[0] == labels[1] == labels[2]
    assert len(set(labels.tolist())) == 5
    # Where participants are alike, copies must be closer still: the same three, among
    # updates that all lie within 0.4 of the first direction, are three groups.
    alike = 1.0 + np.array([[1.0, 0, 0], [1.0, 0.4, 0], [1.0, 0.9, 0], [1.0, 0, 0.9],
                          [1.0, -0.5, 0.5], [1.0, 0.3, -0.6]])
    assert len(set(copy_groups(np.ones(3), alike).tolist())) == 6


def test_a_group_of_copies_shares_one_weight():
    g = np.zeros(3)
    updates = np.array([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    weights, groups = round_weights(g, updates, [40, 40, 40, 10, 90])
    # The group claims 40 (its mean); the groups' claims 40, 10, 90 are capped at the
    # others' median: 90, 90, 40.
    np.testing.assert_allclose(weights, [40 / 3, 40 / 3, 40 / 3, 10, 40])
    assert len(set(groups.tolist())) == 3
    # Only members cap each other and form groups; the others keep their claim.
    weights, groups = round_weights(g, updates, [40, 40, 40, 10, 90], members=[0, 3, 4])
    np.testing.assert_allclose(weights, [40, 40, 40, 10, 40])
    assert len(set(groups.tolist())) == 5


def test_identical_updates_are_copies_even_when_every_update_is_the_same():
    g = np.zeros(3)
    assert len(set(copy_groups(g, np.ones((4, 3))).tolist())) == 1
    assert copy_groups(g, np.vstack([np.ones((4, 3)), [[1.0, 0, 0]]])).tolist() == \
        [0, 0, 0, 0, 1]
    # An update holding NaN or Inf, or one that does not move the model, is nobody's copy.
    odd = np.array([[1.0, 0, 0], [1.0, 0, 0], [np.nan, 1, 0], [0, 0, 0], [np.inf, 0, 0],
                    [0, 1.0, 0], [0, 0, 1.0]])
    labels = copy_groups(g, odd).tolist()
    assert labels[0] == labels[1] and len(set(labels)) == 6


def test_a_gram_computed_once_gives_the_groups_of_a_fresh_pass():
    # decide_round passes over the updates once and hands each call its members' part.
    rng = np.random.default_rng(5)
    g = rng.standard_normal(50)
    honest = g + rng.standard_normal((6, 50))
    copy = honest[2] + 1e-3 * rng.standard_normal(50)
    updates = np.vstack([honest, copy, copy + 1e-3 * rng.standard_normal(50)])
    everyone = np.arange(len(updates))
    gram = delta_gram(g, updates, everyone)
    assert copy_groups(g, updates, gram=gram).tolist() == copy_groups(g, updates).tolist()
    some = np.array([1, 2, 6, 7])
    labels = copy_groups(g, updates, some, gram=gram[np.ix_(some, some)])
    assert labels.tolist() == copy_groups(g, updates, some).tolist()
    assert labels[2] == labels[6] == labels[7] and len(set(labels.tolist())) == 6
    # The Gram matrix given is the one used: orthogonal deltas are nobody's copies.
    assert len(set(copy_groups(g, updates, some, gram=np.eye(4)).tolist())) == 8
    with pytest.raises(ValueError, match="for 4 members"):
        copy_groups(g, updates, some, gram=gram)


def _round(seed=3):
    """Four honest updates of four data groups (pairwise cosine 0.4-0.6: no copies)."""
    r = crafted_round(seed, n_benign=4, n_malicious=0, groups=4)
    assert len(set(copy_groups(r.global_params, r.updates).tolist())) == 4
    return r, np.array([30, 60, 90, 120])


def _noise_accounts(r, count, seed):
    """``count`` updates of random directions, as long as the first honest one."""
    rng = np.random.default_rng(seed)
    length = np.linalg.norm(r.updates[0] - r.global_params)
    directions = rng.normal(size=(count, r.updates.shape[1]))
    return r.global_params + (length * directions / np.linalg.norm(
        directions, axis=1, keepdims=True)).astype(np.float32)


def _decide(r, updates, claims, strategy="fedavg"):
    return decide_round(get_strategy(strategy), r.global_params, updates, claims,
                        gate=r.gate_scores, score=r.evaluate, scoring="shapley",
                        permutations=40, round_number=1)


@pytest.mark.parametrize("strategy", ["fedavg", "fairfl"])
def test_overstating_data_at_or_above_the_median_changes_nothing(strategy):
    r, claims = _round()
    honest = _decide(r, r.updates, claims, strategy)
    for liar in (2, 3):  # 90 and 120 samples: at or above the others' median
        lied = claims.copy()
        lied[liar] = 10**6
        decision = _decide(r, r.updates, lied, strategy)
        np.testing.assert_array_equal(decision.params, honest.params)
        assert decision.shares == honest.shares


def test_a_small_participant_overstating_gains_at_most_up_to_the_median():
    r, claims = _round()
    lied = claims.copy()
    lied[0] = 10**6  # 30 samples; the others' median is 90
    weights, _ = round_weights(r.global_params, r.updates, lied)
    assert weights.tolist() == [90, 60, 90, 90]  # 90: the median of the others' claims


def test_accounts_that_are_turned_away_neither_move_the_cap_nor_make_copies():
    """Sybils that submit the global model (free riders, rejected and unpaid) with huge
    claims would push the median up for a liar; noise accounts would push the round's
    median distance up until honest participants look like copies. Neither counts: the
    final weights are computed among the accepted updates."""
    r, claims = _round()
    lied = claims.copy()
    lied[0] = 10**6
    alone = _decide(r, r.updates, lied, "fairfl")
    rng = np.random.default_rng(0)
    riders = np.repeat(r.global_params[None, :], 5, axis=0)
    length = np.linalg.norm(r.updates[0] - r.global_params)  # as long as an honest step
    directions = rng.normal(size=(5, r.updates.shape[1]))
    noise = r.global_params + (length * directions / np.linalg.norm(
        directions, axis=1, keepdims=True)).astype(np.float32)
    crowd = np.vstack([r.updates, riders, noise])
    decision = _decide(r, crowd, np.concatenate([lied, [10**9] * 10]), "fairfl")
    assert set(decision.accepted) == {0, 1, 2, 3}
    np.testing.assert_array_equal(decision.params, alone.params)
    assert decision.shares[:4] == alone.shares


def test_the_final_weights_are_those_of_a_fresh_pass_over_the_accepted():
    """decide_round passes over the updates once and takes the accepted updates' part of
    that Gram matrix for the final weights: the same groups and weights as a pass over the
    accepted updates alone, though a non-finite update and turned-away accounts come first."""
    r, claims = _round()
    noise = _noise_accounts(r, 5, seed=1)
    broken = np.full((1, r.updates.shape[1]), np.nan, dtype=r.updates.dtype)
    crowd = np.vstack([broken, noise, r.updates, r.updates[1]])  # account 7 twice (7, 10)
    lied = np.concatenate([[50], [10**9] * 5, claims, [60]])
    decision = _decide(r, crowd, lied, "fairfl")
    assert decision.accepted == (6, 7, 8, 9, 10)
    accepted = list(decision.accepted)
    weights, groups = round_weights(r.global_params, crowd, lied, accepted)
    assert decision.groups.tolist() == groups.tolist()
    assert groups[7] == groups[10] and len(set(groups[accepted].tolist())) == 4
    np.testing.assert_allclose(decision.weights, weights, rtol=1e-12)


def test_fairfl_recombines_from_the_updates_it_did_not_consume():
    """decide_round, whose final weights differ from the provisional ones here, recombines
    the accepted updates (read from the round's input a row at a time) exactly as the
    strategy's combine does, and never writes to the input."""
    r, claims = _round()
    noise = _noise_accounts(r, 3, seed=2)
    crowd = np.vstack([noise, r.updates, r.updates[1]])
    lied = np.concatenate([[10**9] * 3, claims, [60]])
    decision = _decide(r, crowd, lied, "fairfl")
    accepted = list(decision.accepted)
    assert accepted == [3, 4, 5, 6, 7]
    provisional, _ = round_weights(r.global_params, crowd, lied)
    assert not np.array_equal(provisional[accepted], decision.weights[accepted])
    expected = get_strategy("fairfl").combine(
        r.global_params.astype(np.float64), crowd[accepted].astype(np.float64),
        decision.weights[accepted])
    np.testing.assert_array_equal(decision.params, expected.astype(np.float32))
    assert np.isfinite(crowd).all() and crowd[3:].tolist() == np.vstack(
        [r.updates, r.updates[1]]).tolist()  # the input is untouched


def test_fairfl_decides_a_round_without_a_float64_copy_of_the_updates():
    """At 200 x 1M a float64 copy of the updates is 1.6 GB: FairFL's whole decision (the
    rule, the recombination with the final weights, the Shapley scores) reads the input a
    row or a block at a time and never asks the round for the copy."""
    from unittest import mock

    from fl_agent.aggregation.base import Round

    def no_copy(self):
        raise AssertionError("the round's float64 copy of the updates was made")

    r, claims = _round()
    crowd = np.vstack([_noise_accounts(r, 3, seed=2), r.updates, r.updates[1]])
    lied = np.concatenate([[10**9] * 3, claims, [60]])
    with mock.patch.object(Round, "updates", property(no_copy)):
        decision = _decide(r, crowd, lied, "fairfl")
    assert decision.accepted == (3, 4, 5, 6, 7) and sum(decision.shares) > 0
    with mock.patch.object(Round, "updates", property(no_copy)), \
            pytest.raises(AssertionError, match="float64 copy"):
        _decide(r, crowd, lied, "fedavg")  # the control: FedAvg does read it


def test_three_copied_accounts_weigh_and_earn_what_one_would():
    r, claims = _round()
    single = _decide(r, r.updates, claims)
    copies = np.vstack([r.updates, r.updates[1], r.updates[1]])  # account 1 three times
    decision = _decide(r, copies, np.append(claims, [60, 60]))
    np.testing.assert_allclose(decision.params, single.params, rtol=0, atol=1e-6)
    mine = decision.shares[1] + decision.shares[4] + decision.shares[5]
    assert abs(mine - single.shares[1]) <= 2  # parts per million, rounding
    for i in (0, 2, 3):
        assert abs(decision.shares[i] - single.shares[i]) <= 1


def test_without_the_copy_rule_the_copies_would_earn_more():
    """The control for the test above: three copies scored as three players (the rule before
    issue 11) take more than one account."""
    from fl_agent.aggregation.scoring import contribution_scores

    r, claims = _round()
    copies = np.vstack([r.updates, r.updates[1], r.updates[1]])
    samples = np.append(claims, [60, 60]).astype(float)
    strategy = get_strategy("fedavg")
    apart = contribution_scores(strategy, r.global_params, copies, samples, range(6),
                                r.evaluate, num_permutations=720)
    alone = contribution_scores(strategy, r.global_params, r.updates, claims, range(4),
                                r.evaluate, num_permutations=720)
    assert apart[[1, 4, 5]].sum() / apart.sum() > 1.2 * alone[1] / alone.sum()


def test_a_malformed_round_is_refused_before_any_weight_is_computed():
    r, claims = _round()
    with pytest.raises(ConfigError):
        _decide(r, r.updates, claims[:3])
    with pytest.raises(ConfigError):
        _decide(r, r.updates, [30, 60, -1, 90])


def test_update_figures_are_each_updates_direction_length_and_score_alone():
    from fl_agent.aggregation.rounds import update_figures

    updates = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    figures = update_figures(np.zeros(2), updates, np.array([1.0, 0.0]), lambda p: float(p[0]))
    assert [f.cosine for f in figures] == pytest.approx([1.0, 0.0, -1.0])
    assert [f.norm_ratio for f in figures] == pytest.approx([1.0, 2.0, 1.0])  # median 1
    assert [f.alone for f in figures] == pytest.approx([1.0, 0.0, -1.0])
    moved = update_figures(np.ones(2), updates + 1, np.array([2.0, 1.0]), lambda p: 0.0)
    assert [f.cosine for f in moved] == pytest.approx([1.0, 0.0, -1.0])  # deltas, not weights
    still = update_figures(np.ones(2), np.ones((2, 2)), np.ones(2), lambda p: 0.5)
    assert [(f.cosine, f.norm_ratio) for f in still] == [(0.0, 0.0), (0.0, 0.0)]


def test_update_figures_in_blocks_of_rows_are_the_whole_matrixs():
    """Updates wider than half a block of the helpers are made into deltas a row or two at a
    time; the figures are those of the whole matrix at once."""
    from fl_agent.aggregation.base import BLOCK_VALUES
    from fl_agent.aggregation.rounds import update_figures

    rng = np.random.default_rng(8)
    d = BLOCK_VALUES // 2 + 7  # two rows a block: three blocks for five updates
    g = rng.standard_normal(d)
    updates = (g + rng.standard_normal((5, d)) * rng.uniform(0.5, 3.0, (5, 1))).astype(np.float32)
    new = g + rng.standard_normal(d)
    seen = []
    figures = update_figures(g, updates, new, lambda p: seen.append(p.dtype) or float(p[0]))
    deltas = updates.astype(np.float64) - g
    lengths = np.linalg.norm(deltas, axis=1)
    cosines = deltas @ (new - g) / (lengths * np.linalg.norm(new - g))
    assert [f.cosine for f in figures] == pytest.approx(cosines, rel=1e-12)
    assert [f.norm_ratio for f in figures] == pytest.approx(lengths / np.median(lengths),
                                                            rel=1e-12)
    assert [f.alone for f in figures] == pytest.approx(updates[:, 0].astype(np.float64))
    assert seen == [np.dtype(np.float64)] * 5
