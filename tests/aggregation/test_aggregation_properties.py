"""Property-based tests (hypothesis) of the aggregation rules and the reward shares."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fl_agent.aggregation import STRATEGIES, get_strategy, shapley_values, to_reward_shares

PROFILE = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])
values = st.floats(-100, 100, allow_nan=False, width=32)


def build(name, server_update):
    if name == "fltrust":  # a server that trained the same model as everybody
        return get_strategy(name, server_update=server_update)
    return get_strategy(name)


@st.composite
def identical_rounds(draw):
    d = draw(st.integers(1, 40))
    n = draw(st.integers(1, 8))
    g = draw(hnp.arrays(np.float32, d, elements=values))
    update = draw(st.one_of(st.just(g.copy()), hnp.arrays(np.float32, d, elements=values)))
    counts = draw(st.lists(st.integers(1, 1000), min_size=n, max_size=n))
    return g, update, n, counts


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@PROFILE
@given(round_=identical_rounds())
def test_aggregate_of_identical_updates_is_that_update(round_, name):
    g, update, n, counts = round_
    result = build(name, update).aggregate(g, np.tile(update, (n, 1)), counts)
    np.testing.assert_allclose(result.params, update, rtol=1e-5, atol=1e-4)


@st.composite
def rounds_and_permutations(draw):
    d = draw(st.integers(1, 20))
    n = draw(st.integers(1, 10))
    g = draw(hnp.arrays(np.float32, d, elements=values))
    updates = draw(hnp.arrays(np.float32, (n, d), elements=values))
    counts = draw(st.lists(st.integers(1, 1000), min_size=n, max_size=n))
    perm = draw(st.permutations(range(n)))
    return g, updates, np.array(counts), np.array(perm)


@PROFILE
@given(rounds_and_permutations(), st.sampled_from(["fedavg", "median", "trimmed_mean"]))
def test_order_of_updates_does_not_matter(round_, name):
    g, updates, counts, perm = round_
    strategy = get_strategy(name, **({"beta": 0.2} if name == "trimmed_mean" else {}))
    a = strategy.aggregate(g, updates, counts)
    b = strategy.aggregate(g, updates[perm], counts[perm])
    np.testing.assert_allclose(a.params, b.params, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(a.scores[perm], b.scores, atol=1e-6)


@PROFILE
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30),
       st.data(), st.integers(1, 1_000_000), st.integers(0, 1_000))
def test_reward_shares_are_valid_ledger_shares(scores, data, total, tie_break):
    accepted = data.draw(st.lists(st.integers(0, len(scores) - 1), unique=True))
    shares = to_reward_shares(scores, accepted, total=total, tie_break=tie_break)
    assert len(shares) == len(scores)
    assert all(isinstance(s, int) and 0 <= s <= total for s in shares)
    assert sum(shares) == (total if accepted else 0)
    assert all(shares[i] == 0 for i in range(len(scores)) if i not in accepted)
    positive = [i for i in accepted if scores[i] > 0]
    for i in positive:  # within one unit of the exact proportion
        exact = scores[i] / sum(scores[j] for j in positive) * total
        assert abs(shares[i] - exact) < 1 + 1e-9


@PROFILE
@given(st.integers(1, 6), st.integers(0, 2**32 - 1), st.integers(1, 60))
def test_shapley_values_are_efficient(n, seed, permutations):
    rng = np.random.default_rng(seed)
    table: dict[frozenset[int], float] = {}

    def game(players):
        key = frozenset(players)
        if key not in table:
            table[key] = float(rng.normal())
        return table[key]

    values = shapley_values(game, range(n), num_permutations=permutations, seed=seed)
    assert abs(sum(values.values()) - (game(range(n)) - game([]))) < 1e-9
