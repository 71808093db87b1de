"""Rule R67's harness (benchmarks.dp_reference_direction): each DP update's cosine to the
aggregator's own reference, as a z-score, and what a line on the senders' records trades."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.dp_reference_direction import (
    capped_trade,
    direction_z,
    line_trade,
    main,
    measure,
    running_records,
)


def test_the_z_score_is_the_cosine_in_units_of_a_random_directions_spread():
    reference = np.array([3.0, 0.0, 0.0, 4.0])
    assert direction_z(reference * 2, reference) == pytest.approx(2.0)  # cos 1, sqrt(4)
    assert direction_z(-reference, reference) == pytest.approx(-2.0)  # a sign flip mirrors it
    assert direction_z(np.array([0.0, 1.0, 0.0, 0.0]), reference) == 0.0
    assert direction_z(np.zeros(4), reference) == 0.0


def test_a_random_directions_z_scores_are_about_standard_normal():
    """What makes no spread need estimating from the senders: for d = 4,810 (the digits
    MLP), 2,000 random directions against one reference have mean about 0 and standard
    deviation about 1 (standard errors 0.022 and 0.016 here)."""
    rng = np.random.default_rng(7)
    reference = rng.normal(size=4810)
    z = np.array([direction_z(rng.normal(size=4810), reference) for _ in range(2000)])
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.06


def test_records_and_the_trade_of_a_line():
    """Three senders over four rounds: one steady at z = 1.5, one that starts at -3 and
    recovers, one at z = -0.5. Records after round r: cumsum / sqrt(r)."""
    z = np.array([[1.5, -3.0, -0.5], [1.5, 1.0, -0.5], [1.5, 1.0, -0.5], [1.5, 1.0, -0.5]])
    records = running_records(z)
    assert records[:, 0].tolist() == pytest.approx([1.5 * r / math.sqrt(r) for r in (1, 2, 3, 4)])
    assert records[0, 1] == -3.0 and records[3, 1] == pytest.approx(0.0)
    trade = line_trade(records, 2.0)
    # sender 1 is below -2 in round 1 only (-3, then -2/sqrt 2 = -1.41); nobody at the end
    assert trade["honest_turned_away"] == 1 and trade["honest_rounds_turned_away"] == 1
    assert trade["honest_below_at_end"] == 0
    # mirrored: sender 0's flipper is caught once its record passes 2 (round 2: 3/1.41 = 2.12)
    assert trade["flippers_caught"] == 1 and trade["flippers_caught_at_end"] == 1
    assert trade["first_caught_round"] == [2, None, None]


def test_one_small_run_records_every_round_of_every_sender(tmp_path):
    """A real run, seed 1, both starts, 2 rounds of 3 clients: every sender's z-score in
    every round, the records are their running sums, and from the seeded start honest
    updates point the reference's way (every sender's record above 2 by the end)."""
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["--seeds", "1", "--rounds", "2", "--clients", "3",
                                       "--json", str(out), "--plot", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    runs = json.loads(out.read_text())["runs"]
    assert [r["start"] for r in runs] == ["warm", "seeded"]
    for run in runs:
        z = np.array(run["z"])
        assert z.shape == (2, 3)
        assert run["final_records"] == pytest.approx(
            (z.sum(axis=0) / math.sqrt(2)).tolist(), abs=1e-3)
    seeded = runs[1]
    assert min(seeded["final_records"]) > 2 and seeded["trade"]["honest_turned_away"] == 0
    assert runs[0]["start_accuracy"] > seeded["start_accuracy"] + 0.5  # the warm start trained
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_a_cap_on_a_rounds_z_bounds_the_credit_one_round_buys():
    """A sender with one round at z = 30 (a round trained without noise) and then z = -2.5
    for five rounds: uncapped, its record stays above -2 (17.5 / sqrt 6 at the end), so it
    is never turned away; capped at 2 the credit is gone, (2 - 12.5) / sqrt 6 = -4.29 at
    the end: turned away, and banned after three rounds below the line. The flipper side
    reads min(-z, 2): -30, then +2 a round."""
    z = np.array([[30.0]] + [[-2.5]] * 5)
    uncapped, capped = capped_trade(z, None), capped_trade(z, 2.0)
    assert uncapped["honest"]["ever"] == 0
    assert capped["honest"]["ever"] == 1 and capped["honest"]["at_end"] == 1
    assert capped["honest"]["banned"] == 1
    # the flipper's side: -z is -30 then +2.5; capped at 2 it is -30 then 2 each round
    assert capped["flippers"]["rounds"] == sum(
        (-30 + 2 * k) / math.sqrt(k + 1) < -2 for k in range(6))


def test_the_reference_reads_the_half_the_start_did_not(monkeypatch):
    """Every reference is trained on the gate's half of the validation split and the warm
    start on the other half (rule R62b's halves), whichever start."""
    import fl_agent.learning.training as training
    from benchmarks.privacy_dp import Setting, halves, honest_federation, standardized

    seen: list[np.ndarray] = []
    real = training.train_local

    def spy(spec, params, X, y, steps, **kwargs):
        seen.append(np.asarray(X))
        return real(spec, params, X, y, steps, **kwargs)

    monkeypatch.setattr(training, "train_local", spy)
    measure(1, "warm", 8.0, 3, 5, rounds=2, clients=3)
    X_val, y_val, *_ = standardized(honest_federation(1, Setting(clients=3, rounds=2)))
    (X_start, _), (X_gate, _) = halves(X_val, y_val, 1)
    assert len(seen) == 3  # the start, then one reference a round
    assert np.array_equal(seen[0], X_start)
    assert all(np.array_equal(X, X_gate) for X in seen[1:])
    assert not np.array_equal(X_start, X_gate)


def test_a_sign_flippers_update_is_the_negation_so_its_z_is_mirrored():
    """The benchmarks' sign flipper (flip_scale 1) sends its delta reversed: its direction
    z-score is the honest one's negation exactly, the premise of reading flippers from
    honest records."""
    from benchmarks.privacy_dp import Setting, honest_federation

    fed = honest_federation(1, Setting(clients=4, rounds=2), "sign_flip", 0.5)
    flipper = next(c for c in fed.clients if c.malicious)
    rng = np.random.default_rng(3)
    params = rng.normal(size=50).astype(np.float32)
    trained = params + rng.normal(size=50).astype(np.float32)
    reference = rng.normal(size=50)
    sent = np.asarray(flipper.poison(params, trained), dtype=np.float64) - params
    honest = trained.astype(np.float64) - params
    assert np.allclose(sent, -honest, atol=1e-5)
    assert direction_z(sent, reference) == pytest.approx(-direction_z(honest, reference),
                                                         abs=1e-5)


def test_its_fedavg_run_is_the_dp_benchmarks():
    """The loop written here gives the accuracy benchmarks.privacy_dp gives FedAvg on the
    same seed, start and setting (2 rounds, 3 clients, R62b's start of 5 steps)."""
    from benchmarks.dp_reference_direction import calibration_for
    from benchmarks.privacy_dp import Setting, honest_federation, measure_run

    setting = Setting(clients=3, rounds=2, warm_start=5, gate_data="half")
    ours = measure(1, "warm", 8.0, 3, 5, rounds=2, clients=3)
    theirs = measure_run(honest_federation(1, setting), "fedavg", "ε = 8", setting,
                         calibration_for(1, 8.0, 2, 3))
    assert ours["start_accuracy"] == pytest.approx(theirs["start_accuracy"])
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"])
