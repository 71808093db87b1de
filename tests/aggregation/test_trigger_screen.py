"""FairFL's trigger screen (step 1b): by hand, as properties, and on real digits training.

The digits rounds are real: a 64-64-10 MLP trained with PyTorch for 20 SGD steps on each
client's shard (Dirichlet 0.5), three of them backdoor attackers that stamp a 2x2 corner
patch on half of their examples and relabel them 0 (the simulation's attack)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fl_agent.aggregation import FairFL, Reason
from fl_agent.aggregation.trigger_screen import input_feature_shares, trigger_excess
from fl_agent.errors import ConfigError
from fl_agent.learning import (
    ModelSpec,
    init_params,
    input_layer,
    load_dataset,
    partition,
    split_dataset,
    train_local,
    validation_scores,
)
from fl_agent.learning.task_doc import DataSpec
from fl_agent.simulation.attacks import Attack, Trigger, poison_data

# ----------------------------------------------------------------------------- by hand


def test_input_feature_shares_by_hand():
    # layer at offset 1: 2 units x 3 features, row-major; the rest of the vector is ignored
    deltas = np.array([
        [9.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 9.0],  # columns: (1,1) (0,0) (0,0) -> 2, 0, 0
        [9.0, 3.0, 0.0, 4.0, 0.0, 0.0, 0.0, 9.0],  # columns: (3,0) (0,0) (4,0) -> 9, 0, 16
        [9.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0],  # no input-layer change at all
    ])
    shares = input_feature_shares(deltas, (1, 2, 3))
    np.testing.assert_allclose(shares, [[1.0, 0.0, 0.0], [9 / 25, 0.0, 16 / 25],
                                        [0.0, 0.0, 0.0]])


def test_trigger_excess_is_the_largest_share_above_the_round_median():
    # per-feature median of the shares below is (0.3, 0.3, 0.15, 0.2)
    deltas = np.sqrt(np.array([[0.3, 0.3, 0.2, 0.2],
                               [0.3, 0.3, 0.2, 0.2],
                               [0.0, 0.0, 0.0, 1.0],
                               [0.4, 0.4, 0.1, 0.1]]))
    excess = trigger_excess(deltas, (0, 1, 4))
    np.testing.assert_allclose(excess, [0.05, 0.05, 0.8, 0.1], atol=1e-12)


LAYER = (0, 8, 32)


def _piled_round(n: int = 8, seed: int = 0, spike: float = 8.0):
    """``n`` updates of an 8-unit x 32-feature input layer plus 5 other weights; update 0's
    input-layer change is piled on feature 5."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=8 * 32 + 5)
    base = rng.normal(size=g.size)
    deltas = 0.05 * (base + 0.5 * rng.normal(size=(n, g.size)))
    deltas[0, 5:256:32] *= spike  # column 5 of the 8 x 32 block
    return g, g + deltas


def test_an_update_piled_on_one_input_feature_is_rejected_as_a_trigger():
    g, updates = _piled_round()
    strategy = FairFL(input_layer=LAYER)
    report = strategy.report(g, updates, np.ones(len(updates)))
    assert report.result.rejected == (0,)
    assert report.result.reasons[0] == Reason.TRIGGER
    assert set(report.trigger_excess) == set(range(len(updates)))
    assert report.trigger_excess[0] >= strategy.trigger_share
    assert max(v for i, v in report.trigger_excess.items() if i) < strategy.trigger_share


@pytest.mark.parametrize("config", [{}, {"input_layer": LAYER, "trigger_share": 0.0}])
def test_without_the_input_layer_or_with_share_zero_the_screen_does_not_run(config):
    g, updates = _piled_round()
    report = FairFL(**config).report(g, updates, np.ones(len(updates)))
    assert Reason.TRIGGER not in report.result.reasons.values()
    assert dict(report.trigger_excess) == {}


def test_the_screen_needs_min_samples_updates():
    g, updates = _piled_round(n=2)
    report = FairFL(input_layer=LAYER).report(g, updates, np.ones(2))
    assert dict(report.trigger_excess) == {}
    assert Reason.TRIGGER not in report.result.reasons.values()


def test_the_screen_runs_after_the_norm_screen():
    """A free rider has no input-layer change and a scaled update is rejected for its
    norm; neither enters the median the screen compares with."""
    g, updates = _piled_round(n=9)
    updates[7] = g
    updates[8] = g + 10 * (updates[8] - g)
    report = FairFL(input_layer=LAYER).report(g, updates, np.ones(len(updates)))
    assert report.result.reasons == {0: Reason.TRIGGER, 7: Reason.FREE_RIDER,
                                     8: Reason.NORM_OUTLIER}
    assert set(report.trigger_excess) == set(range(7))


@pytest.mark.parametrize("layer", [(0, 4), (0, 4, 8, 1), (-1, 4, 8), (0, 0, 8), (0, 4, 0),
                                   (0, 4.0, 8), (True, 4, 8), "abc", 5])
def test_a_malformed_input_layer_is_refused(layer):
    with pytest.raises(ConfigError, match="input_layer"):
        FairFL(input_layer=layer)


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan"), "x"])
def test_trigger_share_is_validated(share):
    with pytest.raises(ConfigError, match="trigger_share"):
        FairFL(trigger_share=share)


def _split_pile():
    """A round in which update 0's pile is mostly in its earlier round: error feedback sent
    its trigger column first (``earlier``), and its update now carries the rest of its step.
    The others' earlier rounds are like their updates."""
    g, updates = _piled_round(spike=2.0)
    deltas = updates - g
    earlier = deltas[:, :8 * 32].copy()
    earlier[0] = 0.0
    earlier[0, 5:256:32] = 3 * deltas[0, 5:256:32]
    return g, updates, earlier


def test_over_two_rounds_a_pile_split_between_them_is_seen():
    from fl_agent.aggregation.base import prepare_round

    g, updates, earlier = _split_pile()
    alone = FairFL(input_layer=LAYER).report(g, updates, np.ones(8))
    assert alone.result.rejected == () and max(alone.trigger_excess.values()) < 0.05
    both = FairFL(input_layer=LAYER, trigger_rounds=2)
    report = both._run(prepare_round(g, updates, np.ones(8), earlier), None)
    assert report.result.reasons == {0: Reason.TRIGGER}
    own = trigger_excess((updates - g)[:, :256], LAYER)
    summed = trigger_excess((updates - g)[:, :256] + earlier, LAYER)
    np.testing.assert_allclose([report.trigger_excess[i] for i in range(8)],
                               np.maximum(own, summed), rtol=1e-12)
    figures = report.result.figures["trigger"]
    assert figures["rounds"] == 2
    np.testing.assert_allclose(figures["alone"], own, rtol=1e-12)
    np.testing.assert_allclose(figures["summed"], summed, rtol=1e-12)
    # Through decide_round, as the aggregator calls it
    from fl_agent.aggregation.rounds import decide_round

    decision = decide_round(both, g, updates, np.ones(8), gate=None, score=lambda v: 0.0,
                            scoring="loo", earlier=earlier)
    assert dict(decision.reasons) == {0: "trigger"}


def test_one_round_ignores_what_came_before():
    from fl_agent.aggregation.base import prepare_round

    g, updates, earlier = _split_pile()
    report = FairFL(input_layer=LAYER)._run(prepare_round(g, updates, np.ones(8), earlier),
                                            None)
    alone = FairFL(input_layer=LAYER).report(g, updates, np.ones(8))
    assert dict(report.trigger_excess) == dict(alone.trigger_excess)
    assert "rounds" not in report.result.figures["trigger"]
    # Two rounds without anything before (a sender's first round) screen the update alone.
    first = FairFL(input_layer=LAYER, trigger_rounds=2).report(g, updates, np.ones(8))
    assert dict(first.trigger_excess) == dict(alone.trigger_excess)
    assert "rounds" not in first.result.figures["trigger"]


def test_no_earlier_round_hides_a_pile_in_this_one():
    """An attacker that sent a large change spread over every input feature the round
    before dilutes its sum under the threshold; its own pile still counts."""
    from fl_agent.aggregation.base import prepare_round

    g, updates = _piled_round()
    deltas = updates - g
    earlier = deltas[:, :256].copy()
    earlier[0] = 40 * np.random.default_rng(1).normal(0, 0.05, 256)
    summed = trigger_excess(deltas[:, :256] + earlier, LAYER)
    assert summed[0] < 0.2 <= trigger_excess(deltas[:, :256], LAYER)[0]
    report = FairFL(input_layer=LAYER, trigger_rounds=2)._run(
        prepare_round(g, updates, np.ones(8), earlier), None)
    assert report.result.reasons == {0: Reason.TRIGGER}


@pytest.mark.parametrize(("earlier", "message"), [
    (np.zeros((7, 256)), "one row per update"),
    (np.zeros((8, 0)), "one row per update"),
    (np.zeros(256), "one row per update"),
    (np.zeros((8, 8 * 32 + 6)), "one row per update"),
    (np.full((8, 256), np.nan), "NaN or infinite"),
])
def test_earlier_rounds_of_the_wrong_shape_are_refused(earlier, message):
    from fl_agent.aggregation.base import prepare_round

    g, updates = _piled_round()
    with pytest.raises(ConfigError, match=message):
        prepare_round(g, updates, np.ones(8), earlier)


def test_earlier_rounds_narrower_than_the_input_layer_are_refused():
    from fl_agent.aggregation.base import prepare_round

    g, updates = _piled_round()
    rnd = prepare_round(g, updates, np.ones(8), np.zeros((8, 100)))
    with pytest.raises(ConfigError, match="the trigger screen reads 256"):
        FairFL(input_layer=LAYER, trigger_rounds=2)._run(rnd, None)


@pytest.mark.parametrize("rounds", [0, -1, 1.5, True, "2"])
def test_trigger_rounds_is_validated(rounds):
    with pytest.raises(ConfigError, match="trigger_rounds"):
        FairFL(trigger_rounds=rounds)


def test_an_input_layer_from_json_becomes_a_tuple():
    assert FairFL(input_layer=[3, 4, 8]).input_layer == (3, 4, 8)


def test_an_input_layer_larger_than_the_vector_says_where_to_get_it():
    g, updates = _piled_round()
    with pytest.raises(ConfigError, match="input_layer"):
        FairFL(input_layer=(10, 8, 32)).aggregate(g, updates, np.ones(len(updates)))


# ------------------------------------------------------------------------------ properties

deltas_strategy = arrays(np.float64, st.tuples(st.integers(3, 8), st.just(12)),
                         elements=st.floats(-10, 10, allow_nan=False, width=32))


@settings(max_examples=60, deadline=None)
@given(deltas=deltas_strategy, factors=st.lists(st.floats(0.01, 100), min_size=8, max_size=8),
       seed=st.integers(0, 2**16))
def test_the_statistic_ignores_update_length_and_order(deltas, factors, seed):
    layer = (2, 2, 5)
    scaled = deltas * np.asarray(factors[:deltas.shape[0]])[:, None]
    shares = input_feature_shares(deltas, layer)
    assert np.allclose(input_feature_shares(scaled, layer), shares, atol=1e-9)
    sums = shares.sum(axis=1)
    assert np.all(np.isclose(sums, 1.0) | (sums == 0.0))
    order = np.random.default_rng(seed).permutation(deltas.shape[0])
    excess = trigger_excess(deltas, layer)
    assert np.allclose(trigger_excess(deltas[order], layer), excess[order])
    assert np.all(np.abs(excess) <= 1.0 + 1e-12)
    assert np.all(excess[sums == 0.0] <= 0.0)  # no input-layer change is never a trigger


# ------------------------------------------------------------------------ real training


@dataclass(frozen=True)
class DigitsRound:
    spec: ModelSpec
    global_params: np.ndarray
    updates: np.ndarray
    num_samples: np.ndarray
    attackers: frozenset[int]
    X_val: np.ndarray
    y_val: np.ndarray


def _digits_round(backdoor: bool, warmup_rounds: int = 0, clients: int = 12,
                  attackers: int = 3, seed: int = 3) -> DigitsRound:
    dataset = load_dataset("digits")
    splits = split_dataset(dataset, seed=seed, standardize=False)
    data = DataSpec.describe(dataset, splits.train.X)
    spec = ModelSpec.for_features("mlp", dataset.feature_shape, dataset.num_classes)
    corner = Trigger.corner(dataset.feature_shape)
    trigger = Trigger(corner.features, float(splits.train.X[:, list(corner.features)].max()))
    shards = []
    for index, rows in enumerate(partition(splits.train.y, clients, "dirichlet", alpha=0.5,
                                           seed=seed)):
        X, y = splits.train.X[rows], splits.train.y[rows]
        if backdoor and index < attackers:
            X, y = poison_data(Attack("backdoor"), X, y, dataset.num_classes, trigger=trigger,
                               rng=np.random.default_rng(index))
        shards.append((data.standardize(X), y))
    g = init_params(spec, seed)

    def train_all(params: np.ndarray, rnd: int) -> np.ndarray:
        return np.stack([train_local(spec, params, X, y, 20, seed=100 * rnd + i).vector
                         for i, (X, y) in enumerate(shards)])

    counts = np.array([len(y) for _, y in shards], dtype=float)
    honest = slice(attackers if backdoor else 0, None)
    for rnd in range(warmup_rounds):  # FedAvg of the honest clients: a trained global model
        g = np.average(train_all(g, rnd)[honest], axis=0, weights=counts[honest])
    return DigitsRound(spec, g, train_all(g, warmup_rounds), counts,
                       frozenset(range(attackers)) if backdoor else frozenset(),
                       data.standardize(splits.validation.X), splits.validation.y)


@pytest.mark.parametrize("warmup_rounds", [0, 5])
def test_backdoor_attackers_are_caught_by_the_screen_on_real_training(warmup_rounds):
    r = _digits_round(backdoor=True, warmup_rounds=warmup_rounds)
    layer = input_layer(r.spec)
    report = FairFL(input_layer=layer).report(
        r.global_params, r.updates, r.num_samples,
        lambda v: validation_scores(r.spec, v, r.X_val, r.y_val))
    trigger = {i for i, why in report.result.reasons.items() if why == Reason.TRIGGER}
    assert trigger == set(r.attackers)
    assert not set(r.attackers) & set(report.result.accepted)
    assert len(report.result.accepted) >= len(r.updates) - len(r.attackers) - 1
    # without the screen, the same attackers pass every other step of FairFL
    unscreened = FairFL().aggregate(r.global_params, r.updates, r.num_samples,
                                    lambda v: validation_scores(r.spec, v, r.X_val, r.y_val))
    assert set(r.attackers) <= set(unscreened.accepted)


@pytest.mark.parametrize("warmup_rounds", [0, 5])
def test_no_honest_update_is_taken_for_a_trigger(warmup_rounds):
    r = _digits_round(backdoor=False, warmup_rounds=warmup_rounds)
    report = FairFL(input_layer=input_layer(r.spec)).report(r.global_params, r.updates,
                                                            r.num_samples)
    assert Reason.TRIGGER not in report.result.reasons.values()
    assert max(report.trigger_excess.values()) < 0.5 * FairFL().trigger_share
