"""Contribution scoring: leave-one-out and Shapley values on games with known answers, the
value of subsets through a strategy's combination rule, and on-chain reward shares."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from crafted import crafted_round

from fl_agent.aggregation import (
    STRATEGIES,
    FairFL,
    contribution_scores,
    get_strategy,
    leave_one_out,
    permutation_shapley_values,
    shapley_values,
    subset_value,
    to_reward_shares,
)
from fl_agent.errors import ConfigError

WEIGHTS = {0: 3.0, 1: 1.0, 2: 0.0, 3: -2.0, 4: 5.5, 5: 0.25}


def additive(players):
    return 10.0 + sum(WEIGHTS[p] for p in players)


class Counting:
    def __init__(self, game):
        self.game, self.calls = game, 0

    def __call__(self, players):
        self.calls += 1
        return self.game(players)


def test_leave_one_out_on_an_additive_game():
    assert leave_one_out(additive, WEIGHTS) == {p: max(0.0, w) for p, w in WEIGHTS.items()}


# 6 players: every permutation (6! <= 1000), every subset (2^6 <= 30 * 6), then sampled
@pytest.mark.parametrize("num_permutations", [1000, 30, 5])
def test_shapley_on_an_additive_game_is_each_weight(num_permutations):
    values = shapley_values(additive, WEIGHTS, num_permutations=num_permutations, seed=1)
    assert values == pytest.approx(WEIGHTS)


def test_shapley_of_the_glove_game():
    """One left glove (player 0), two right gloves: v = number of pairs."""
    def gloves(players):
        players = set(players)
        return float(min(int(0 in players), len(players & {1, 2})))

    assert shapley_values(gloves, [0, 1, 2]) == pytest.approx({0: 2 / 3, 1: 1 / 6, 2: 1 / 6})
    assert leave_one_out(gloves, [0, 1, 2]) == {0: 1.0, 1: 0.0, 2: 0.0}


def test_shapley_efficiency_when_sampled():
    rng = np.random.default_rng(0)
    table = {frozenset(s): float(rng.normal()) for k in range(8)
             for s in itertools.combinations(range(7), k)}
    table[frozenset(range(7))] = 4.0

    def game(players):
        return table[frozenset(players)]

    values = shapley_values(game, range(7), num_permutations=10, seed=3)  # 2^7 > 70: sampled
    assert sum(values.values()) == pytest.approx(game(range(7)) - game([]))


def _noisy_square_game(n, seed):
    rng = np.random.default_rng(seed)
    table = {frozenset(s): float(len(s) ** 2 + rng.normal(scale=0.1)) for k in range(n + 1)
             for s in itertools.combinations(range(n), k)}
    return lambda players: table[frozenset(players)]


def test_sampled_shapley_is_seeded_and_close_to_exact():
    game = _noisy_square_game(13, 1)
    exact = shapley_values(game, range(13), num_permutations=1000)  # 2^13 <= 13,000: exact
    sampled = shapley_values(game, range(13), num_permutations=400, seed=7)  # 8,192 > 5,200
    assert sampled == shapley_values(game, range(13), num_permutations=400, seed=7)
    assert sampled != shapley_values(game, range(13), num_permutations=400, seed=8)
    for p in range(13):  # a marginal has a standard deviation of 7.5: 0.37 over 400
        assert sampled[p] == pytest.approx(exact[p], abs=1.3)  # ~3.5 standard errors


def test_exact_over_subsets_equals_exact_over_permutations():
    game = _noisy_square_game(6, 2)
    over_orders = shapley_values(game, range(6), num_permutations=720)  # 6! orders
    over_subsets = shapley_values(game, range(6), num_permutations=11)  # 64 <= 66 subsets
    assert over_subsets == pytest.approx(over_orders, abs=1e-12)
    assert over_subsets != pytest.approx(shapley_values(game, range(6), num_permutations=10,
                                                        seed=0), abs=1e-12)  # 64 > 60
    # the sampler alone, as the fidelity benchmark runs it, never takes the subsets
    assert permutation_shapley_values(game, range(6), num_permutations=11, seed=0) \
        != pytest.approx(over_orders, abs=1e-12)


@pytest.mark.parametrize(("players", "num_permutations", "exact"),
                         [(8, 32, True), (8, 31, False), (8, 40, True), (9, 40, False)])
def test_subsets_are_taken_up_to_the_samplers_largest_number_of_evaluations(
        players, num_permutations, exact):
    game = Counting(_noisy_square_game(players, 3))
    values = shapley_values(game, range(players), num_permutations=num_permutations, seed=0)
    # 2^8 = 256 subsets against at most 32 * 8 = 256 (31 * 8 = 248) prefixes; at the
    # aggregator's 40 permutations, 8 players are exact and 9 (512 > 360) are sampled
    assert (game.calls == 2 ** players) is exact
    exact_values = shapley_values(_noisy_square_game(players, 3), range(players),
                                  num_permutations=2 ** players)  # over subsets: checked above
    assert (values == pytest.approx(exact_values, abs=1e-12)) is exact


def test_truncation_saves_evaluations():
    def saturating(players):  # the first three players bring everything
        return float(min(len(players), 3))

    full, cut = Counting(saturating), Counting(saturating)
    shapley_values(full, range(12), num_permutations=40, seed=0)  # 2^12 > 480: sampled
    values = shapley_values(cut, range(12), num_permutations=40, seed=0, truncation=1e-9)
    assert cut.calls < full.calls
    assert sum(values.values()) == pytest.approx(3.0)


def test_truncation_scores_nobody_in_a_round_that_leaves_the_score_where_it_was():
    """Why the aggregator does not truncate (docs/sweep.md §5): when v(A) = v(empty), every
    permutation stops before its first player, whatever the players did."""
    def seesaw(players):  # player 0 helps, player 1 harms as much, the others do nothing
        chosen = set(players)
        return float((0 in chosen) - (1 in chosen))

    sampled = shapley_values(seesaw, range(12), num_permutations=40, seed=0)
    game = Counting(seesaw)
    cut = shapley_values(game, range(12), num_permutations=40, seed=0, truncation=1e-9)
    assert sampled[0] == pytest.approx(1.0) and sampled[1] == pytest.approx(-1.0)
    assert set(cut.values()) == {0.0} and game.calls == 2  # the empty and the full set


def test_value_functions_are_evaluated_once_per_subset():
    game = Counting(additive)
    shapley_values(game, range(4), num_permutations=24)
    assert game.calls == 2 ** 4


def test_bad_arguments():
    with pytest.raises(ConfigError):
        shapley_values(additive, [0, 0])
    with pytest.raises(ConfigError):
        shapley_values(additive, [0, 1], num_permutations=0)
    with pytest.raises(ConfigError):
        shapley_values(additive, [0, 1], truncation=-1)
    assert shapley_values(additive, []) == {} and leave_one_out(additive, []) == {}


# ------------------------------------------------------------ values through a strategy


def test_subset_value_uses_the_strategys_combination_rule():
    r = crafted_round(0, n_benign=5, n_malicious=0)
    calls = []

    def evaluate(params):
        calls.append(params.dtype)
        return r.evaluate(params)

    value = subset_value(get_strategy("fedavg"), r.global_params, r.updates, r.num_samples,
                         evaluate)
    assert value([]) == pytest.approx(r.evaluate(r.global_params))
    expected = np.average(r.updates[[1, 3]], axis=0, weights=r.num_samples[[1, 3]])
    assert value([3, 1]) == pytest.approx(r.evaluate(expected), abs=1e-6)  # float32 params
    value([1, 3])
    assert len(calls) == 2 and set(calls) == {np.dtype(np.float32)}
    with pytest.raises(ConfigError, match="cannot value"):
        value([7])


def test_contribution_scores_of_a_fairfl_round():
    r = crafted_round(1, attack="sign_flip", n_benign=6, n_malicious=2, groups=3)
    strategy = FairFL()
    result = strategy.aggregate(r.global_params, r.updates, r.num_samples, r.gate_scores)
    assert set(result.accepted) == r.benign
    for method in ("loo", "shapley"):
        scores = contribution_scores(strategy, r.global_params, r.updates, r.num_samples,
                                     result.accepted, r.evaluate, method=method,
                                     num_permutations=100)
        assert all(scores[i] == 0 for i in r.malicious)
        assert np.all(scores >= 0)
    shapley = contribution_scores(strategy, r.global_params, r.updates, r.num_samples,
                                  result.accepted, r.evaluate, num_permutations=100)
    value = subset_value(strategy, r.global_params, r.updates, r.num_samples, r.evaluate)
    assert all(shapley[i] > 0 for i in r.benign)
    assert shapley.sum() == pytest.approx(value(result.accepted) - value([]))
    shares = to_reward_shares(shapley, result.accepted)
    assert sum(shares) == 1_000_000 and all(shares[i] == 0 for i in r.malicious)
    with pytest.raises(ConfigError):
        contribution_scores(strategy, r.global_params, r.updates, r.num_samples,
                            result.accepted, r.evaluate, method="banzhaf")


def _spread_round(seed: int, n: int = 12, d: int = 50):
    """Updates whose deltas' lengths span 25x, so FairFL's clipping (2x the coalition's
    median length) shortens some members of most coalitions."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(d)
    lengths = np.geomspace(0.2, 5.0, n)
    rng.shuffle(lengths)
    deltas = rng.standard_normal((n, d))
    deltas *= (lengths / np.linalg.norm(deltas, axis=1))[:, None]
    target = g + rng.standard_normal(d)
    return g, g + deltas, rng.integers(1, 40, n).astype(float), target


def _every_strategy():
    """One of every registered strategy (FLTrust with a server step), and the two FairFL
    subclasses the benchmarks use."""
    from benchmarks.ablation import ClusteredFairFL
    from benchmarks.round_reasons import RecordingFairFL

    out = {name: get_strategy(name, **({"server_update": lambda p: p + 0.1}
                                       if name == "fltrust" else {}))
           for name in STRATEGIES}
    out["ablation"] = ClusteredFairFL(clustering="kmeans")
    out["round_reasons"] = RecordingFairFL()  # not a dataclass field: set as the script does
    object.__setattr__(out["round_reasons"], "reports", [])
    return out


@pytest.mark.parametrize("rule", [*STRATEGIES, "ablation", "round_reasons"])
def test_growing_coalitions_from_running_sums_equal_combining_each(rule):
    """Every strategy that claims a clipped weighted mean (``mean_clip_ratio``) gets running
    sums, and they give each prefix of a permutation the model its combine gives it; the
    others combine afresh."""
    g, updates, samples, target = _spread_round(3)
    strategy = _every_strategy()[rule]

    def evaluate(params):  # continuous, so that any error in the model shows
        return -float(np.sum((np.asarray(params, dtype=np.float64) - target) ** 2))

    running = subset_value(strategy, g, updates, samples, evaluate)
    assert (running.start is not None) == (rule in {"fairfl", "fedavg", "krum", "multikrum",
                                                    "ablation", "round_reasons"})
    order = [int(i) for i in np.random.default_rng(4).permutation(len(updates))]
    grown = list(running.prefixes(order))
    for k, got in enumerate(grown, start=1):
        idx = sorted(order[:k])
        scratch = evaluate(strategy.combine(g, updates[idx], samples[idx]))
        assert got == pytest.approx(scratch, rel=1e-12, abs=1e-12), k
    clipped = [k for k in range(1, len(order) + 1)
               if np.linalg.norm(updates[order[:k]] - g, axis=1).max()
               > 2 * np.median(np.linalg.norm(updates[order[:k]] - g, axis=1))]
    assert rule != "fairfl" or len(clipped) >= 5  # the clipping is exercised


def _fairfl_game(seed: int):
    """A spread round, FairFL, a continuous score, and FairFL's combine as a bare function
    (the same rule, without running sums)."""
    g, updates, samples, target = _spread_round(seed)
    strategy = FairFL()

    def evaluate(params):
        return -float(np.sum((np.asarray(params, dtype=np.float64) - target) ** 2))

    def combine(global_params, chosen, weights):
        return strategy.combine(global_params, chosen, weights)

    return g, updates, samples, strategy, evaluate, combine


def test_shapley_through_running_sums_matches_combining_each_coalition():
    g, updates, samples, strategy, evaluate, combine = _fairfl_game(5)
    players = list(range(len(updates)))
    fast = subset_value(strategy, g, updates, samples, evaluate)
    slow = subset_value(combine, g, updates, samples, evaluate)
    assert slow.start is None
    for truncation in (0.0, 0.5):
        got = shapley_values(fast, players, num_permutations=30, seed=2, truncation=truncation)
        expected = shapley_values(slow, players, num_permutations=30, seed=2,
                                  truncation=truncation)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
    scores = contribution_scores(strategy, g, updates, samples, players, evaluate,
                                 num_permutations=30, seed=2, groups=[0, 0, 1, 2, 3, 4, 5,
                                                                      6, 7, 8, 9, 9])
    expected = contribution_scores(combine, g, updates, samples, players, evaluate,
                                   num_permutations=30, seed=2, groups=[0, 0, 1, 2, 3, 4, 5,
                                                                        6, 7, 8, 9, 9])
    assert scores == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_leave_one_out_through_running_sums_matches_combining_each_coalition(monkeypatch):
    """Leave-one-out takes each ``A - {i}`` from the full coalition's running sum less
    ``i``'s updates (the clipping recomputed on the members left, which moves the median
    here), and gives the values combining each coalition afresh gives, players and groups
    alike, without calling the strategy's combine once."""
    g, updates, samples, strategy, evaluate, combine = _fairfl_game(8)
    players = list(range(len(updates)))
    groups = [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    expected = leave_one_out(subset_value(combine, g, updates, samples, evaluate), players)
    expected_groups = contribution_scores(combine, g, updates, samples, players, evaluate,
                                          method="loo", groups=groups)
    calls = []
    real = FairFL.combine
    monkeypatch.setattr(FairFL, "combine", lambda self, *args: calls.append(1) or real(
        self, *args))
    evaluated = []

    def counted(params):
        evaluated.append(1)
        return evaluate(params)

    fast = subset_value(strategy, g, updates, samples, counted)
    got = leave_one_out(fast, players)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert sum(v > 0 for v in expected.values()) >= 6  # the values are not all the floor 0
    assert len(evaluated) == fast.evaluations == len(players) + 1 and not calls
    again = subset_value(strategy, g, updates, samples, counted)
    again(players)  # the full set valued first (afresh): not valued a second time
    evaluated.clear()
    leave_one_out(again, players)
    assert len(evaluated) == len(players)
    calls.clear()
    scores = contribution_scores(strategy, g, updates, samples, players, evaluate,
                                 method="loo", groups=groups)
    assert scores == pytest.approx(expected_groups, rel=1e-9, abs=1e-9) and not calls
    # one player: its absence leaves the global model, v(empty)
    slow = subset_value(combine, g, updates, samples, evaluate)
    best = max(players, key=lambda p: slow([p]))  # one whose update alone helps
    expected_alone = leave_one_out(slow, [best])
    calls.clear()
    alone = leave_one_out(subset_value(strategy, g, updates, samples, evaluate), [best])
    assert alone == pytest.approx(expected_alone, rel=1e-12)
    assert alone[best] > 0 and not calls
    lengths = np.linalg.norm(updates - g, axis=1)
    bounds = {2 * np.median(np.delete(lengths, i)) for i in players}
    assert len(bounds) > 1 and (lengths > min(bounds)).any()  # removal moves the clipping


def test_rules_that_are_not_a_mean_combine_every_coalition_afresh():
    g, updates, samples, _ = _spread_round(6)
    for rule in ("median", "trimmed_mean", "flame"):
        assert subset_value(get_strategy(rule), g, updates, samples, lambda p: 0.0).start is None


def test_running_sums_refuse_an_update_that_cannot_be_valued():
    g, updates, samples, _ = _spread_round(7)
    samples[4] = 0.0  # trained on no samples: not a valid update
    value = subset_value(FairFL(), g, updates, samples, lambda p: 0.0)
    with pytest.raises(ConfigError, match="cannot value updates \\[4\\]"):
        list(value.prefixes([1, 4]))


# ------------------------------------------------------------------------ reward shares


def test_shares_are_proportional_integers_summing_to_the_total():
    shares = to_reward_shares([3.0, 1.0, 0.0, 2.0, 5.0], accepted=[0, 1, 2, 3])
    assert shares == [500_000, 166_667, 0, 333_333, 0]  # 4 was rejected: 0 despite its score
    assert all(isinstance(s, int) for s in shares)


def test_rounding_remainder_goes_to_the_largest_fractions_then_round_robin():
    assert to_reward_shares([1.0, 1.0, 1.0], [0, 1, 2]) == [333_334, 333_333, 333_333]
    assert to_reward_shares([1.0, 1.0, 1.0], [0, 1, 2], tie_break=1) == [333_333, 333_334,
                                                                         333_333]
    assert sum(to_reward_shares([1.0] * 7, range(7), total=1000)) == 1000


def test_three_hundred_equal_contributors_get_equal_pay_over_the_rounds():
    """With basis points a third of them won 34 and the rest 33 every round (a 3 % edge to
    the same ones). In parts per million the difference is one part in 3,333, and the tie
    rotates with the round, so over rounds everyone is paid the same to the unit."""
    n, rounds = 300, 300
    shares = [to_reward_shares([1.0] * n, range(n), tie_break=r) for r in range(rounds)]
    assert all(max(s) - min(s) <= 1 for s in shares)
    totals = [sum(s[i] for s in shares) for i in range(n)]
    assert max(totals) - min(totals) == 0


def test_negative_scores_count_as_zero():
    assert to_reward_shares([-1.0, 2.0, 2.0], [0, 1, 2]) == [0, 500_000, 500_000]


def test_all_zero_scores_split_equally_among_the_accepted():
    assert to_reward_shares([0.0, 0.0, 0.0, 0.0], [1, 2, 3]) == [0, 333_334, 333_333, 333_333]
    assert to_reward_shares([-1.0, 0.0], [0, 1]) == [500_000, 500_000]


def test_nothing_accepted_means_no_shares():
    assert to_reward_shares([1.0, 2.0], []) == [0, 0]


def test_tiny_and_huge_scores_still_sum_exactly():
    shares = to_reward_shares([1e-300, 1e300, 3.3e299, math.pi], [0, 1, 2, 3])
    assert sum(shares) == 1_000_000 and shares[0] == 0 and shares[3] == 0


@pytest.mark.parametrize("scores, accepted, total", [
    ([1.0, float("nan")], [0, 1], 1_000_000),
    ([1.0, 2.0], [0, 2], 1_000_000),
    ([1.0, 2.0], [0, 0], 1_000_000),
    ([1.0, 2.0], [0, 1], 1_000_001),
    ([1.0, 2.0], [0, 1], 0),
    ([[1.0, 2.0]], [0], 1_000_000),
])
def test_bad_share_arguments(scores, accepted, total):
    with pytest.raises(ConfigError):
        to_reward_shares(scores, accepted, total=total)


def test_blend_with_samples_mixes_size_and_merit_over_the_accepted():
    from fl_agent.aggregation import blend_with_samples

    out = blend_with_samples([0.0, 3.0, 1.0, 9.0], [10, 30, 60, 100], [0, 1, 2], 0.5)
    assert out.tolist() == pytest.approx([0.05, 0.15 + 0.375, 0.3 + 0.125, 0.0])
    assert blend_with_samples([0, 0], [1, 3], [0, 1], 0.2).tolist() == [0.25, 0.75]
    assert blend_with_samples([1, 1], [1, 1], [], 0.5).tolist() == [0.0, 0.0]
    assert blend_with_samples([2, 1], [5, 5], [0, 1], 0.0).tolist() == pytest.approx([2 / 3, 1 / 3])
    with pytest.raises(ConfigError):
        blend_with_samples([1], [1], [0], 1.5)
    with pytest.raises(ConfigError):
        blend_with_samples([1, 2], [1], [0], 0.5)
