"""FairFL's NOISE check over a sender's last rounds (``noise_rounds``, rule R52): by hand.

A sparse honest update late in a task that prunes is mostly its sender's own residual, on
coordinates nobody else sends: alone, it looks like noise. Added to what its sender sent the
round before, it shares the others' direction. Noise added to noise stays noise."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from fl_agent.aggregation import FairFL, FedAvg, Reason
from fl_agent.aggregation.base import earlier_window, prepare_round
from fl_agent.aggregation.clustering import chance_similarity
from fl_agent.errors import ConfigError

D = 400
LAYER = (0, 8, 32)  # the first 256 values, for the trigger screen's window


def _round() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Six updates along one direction (with their own small noise); update 6 sends only
    coordinates nobody else touches this round, after sending the common direction the
    round before; update 7 sends noise in both rounds. Every delta has about the same
    length, so no length screen fires."""
    rng = np.random.default_rng(5)
    common = rng.normal(size=D)
    common /= np.linalg.norm(common)
    deltas = np.zeros((8, D))
    earlier = np.zeros((8, D))
    for i in range(6):
        deltas[i] = common + 0.3 * rng.normal(size=D) / np.sqrt(D)
        earlier[i] = common + 0.3 * rng.normal(size=D) / np.sqrt(D)
    own = np.zeros(D)
    own[rng.choice(D, size=4, replace=False)] = rng.normal(size=4)
    deltas[6] = own / np.linalg.norm(own)
    earlier[6] = 3 * common  # what error feedback held back, sent the round before
    for target in (deltas, earlier):
        noise = rng.normal(size=D)
        target[7] = noise / np.linalg.norm(noise)
    g = np.zeros(D)
    return g, g + deltas, earlier


@pytest.mark.parametrize("junk_first", [False, True])
def test_a_sparse_update_is_judged_with_its_senders_round_before_and_noise_stays_noise(
        junk_first):
    g, updates, earlier = _round()
    deltas = updates - g
    chance = chance_similarity(D, 4.0)
    # The premise: alone, update 6 agrees with nobody beyond chance; its sum does.
    alone = cosine_similarity(deltas)
    np.fill_diagonal(alone, -1)
    assert alone[6].max() <= chance < alone[:6].max()
    summed = cosine_similarity(deltas + earlier)
    np.fill_diagonal(summed, -1)
    assert summed[6].max() > chance >= summed[7].max()

    k = int(junk_first)  # an unusable update first: round indices are not the rows read
    if junk_first:
        updates = np.vstack([np.full((1, D), np.nan), updates])
        earlier = np.vstack([np.ones((1, D)), earlier])
        deltas = np.vstack([np.zeros((1, D)), deltas])
    n = len(updates)

    one = FairFL()._run(prepare_round(g, updates, np.ones(n), earlier), None)
    assert {i: r for i, r in one.result.reasons.items() if r == Reason.NOISE} == \
        {6 + k: Reason.NOISE, 7 + k: Reason.NOISE}
    assert "noise" not in one.result.figures

    two = FairFL(noise_rounds=2)._run(prepare_round(g, updates, np.ones(n), earlier), None)
    assert two.result.reasons.get(7 + k) == Reason.NOISE
    assert two.result.reasons.get(6 + k) != Reason.NOISE
    figures = two.result.figures
    assert figures["noise"]["rounds"] == 2
    candidates = figures["candidates"]
    expected = cosine_similarity((deltas + earlier)[candidates])
    np.testing.assert_allclose(figures["noise"]["similarity"], expected, atol=1e-12)
    # The steps after the test read the updates alone, as before.
    np.testing.assert_allclose(figures["similarity"], cosine_similarity(deltas[candidates]),
                               atol=1e-12)


def test_without_anything_before_the_update_is_tested_alone():
    """Round 1, or a rule given no history: the same verdicts as the update alone."""
    g, updates, _ = _round()
    first = FairFL(noise_rounds=2).report(g, updates, np.ones(8))
    alone = FairFL().report(g, updates, np.ones(8))
    assert dict(first.result.reasons) == dict(alone.result.reasons)
    assert "noise" not in first.result.figures


def test_a_history_narrower_than_the_model_is_refused():
    g, updates, earlier = _round()
    rnd = prepare_round(g, updates, np.ones(8), earlier[:, :256])
    with pytest.raises(ConfigError, match="reads all 400"):
        FairFL(noise_rounds=2)._run(rnd, None)


@pytest.mark.parametrize("rounds", [0, -1, 1.5, True, "2"])
def test_noise_rounds_is_validated(rounds):
    with pytest.raises(ConfigError, match="noise_rounds must be"):
        FairFL(noise_rounds=rounds)


def test_both_screens_read_one_window():
    with pytest.raises(ConfigError, match="one window"):
        FairFL(input_layer=LAYER, trigger_rounds=3, noise_rounds=2)
    FairFL(input_layer=LAYER, trigger_rounds=2, noise_rounds=2)
    FairFL(input_layer=LAYER, trigger_rounds=3, noise_rounds=1)
    FairFL(input_layer=LAYER, trigger_rounds=1, noise_rounds=3)
    # Where no trigger screen runs (tabular data, or a share of 0) its window is moot.
    FairFL(trigger_rounds=2, noise_rounds=3)
    FairFL(input_layer=LAYER, trigger_share=0.0, trigger_rounds=2, noise_rounds=3)


@pytest.mark.parametrize(("strategy", "window"), [
    (FairFL(), None),
    (FedAvg(), None),
    (FairFL(trigger_rounds=2), None),  # no input layer: no trigger screen
    (FairFL(input_layer=LAYER, trigger_rounds=2), (2, 256)),
    (FairFL(input_layer=LAYER, trigger_rounds=2, trigger_share=0.0), None),
    (FairFL(noise_rounds=2), (2, D)),
    (FairFL(input_layer=LAYER, trigger_rounds=2, noise_rounds=2), (2, D)),
    (FairFL(input_layer=LAYER, noise_rounds=3), (3, D)),
    # No chance test (a chance level above 0.5, as DP and watermark tasks set): no window.
    (FairFL(noise_rounds=2, chance_z=0.5 * np.sqrt(D) + 1e-9), None),
    (FairFL(noise_rounds=2, chance_z=0.5 * np.sqrt(D)), (2, D)),
    (FairFL(input_layer=LAYER, trigger_rounds=2, noise_rounds=2, chance_z=np.sqrt(D)),
     (2, 256)),
])
def test_the_window_a_caller_keeps(strategy, window):
    assert earlier_window(strategy, D) == window
