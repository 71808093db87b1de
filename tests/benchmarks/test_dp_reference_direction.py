"""Rule R67's harness (benchmarks.dp_reference_direction): each DP update's cosine to the
aggregator's own reference, as a z-score, and what a line on the senders' records trades."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.dp_reference_direction import direction_z, line_trade, main, running_records


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
    """A real run, seed 1, both starts, 4 rounds of 3 clients: every sender's z-score in
    every round, the records are their running sums, and from the seeded start honest
    updates point the reference's way (every sender's record above 2 by the end)."""
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["--seeds", "1", "--rounds", "4", "--clients", "3",
                                       "--json", str(out), "--plot", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    runs = json.loads(out.read_text())["runs"]
    assert [r["start"] for r in runs] == ["warm", "seeded"]
    for run in runs:
        z = np.array(run["z"])
        assert z.shape == (4, 3)
        assert run["final_records"] == pytest.approx(
            (z.sum(axis=0) / math.sqrt(4)).tolist(), abs=1e-3)
    seeded = runs[1]
    assert min(seeded["final_records"]) > 2 and seeded["trade"]["honest_turned_away"] == 0
    assert runs[0]["start_accuracy"] > seeded["start_accuracy"] + 0.5  # the warm start trained
    assert (tmp_path / "r.png").stat().st_size > 10_000
