"""Rule R66's candidate (benchmarks.margin_sequential): the sequential test with a margin a
round, and its replay on a run's recorded z-scores."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.margin_sequential import (
    MarginSequentialFairFL,
    margin_sequential_out,
    replay,
    table,
    with_margin,
)
from fl_agent.aggregation import FairFL


def test_the_margin_is_added_to_each_of_the_senders_rounds():
    """Three earlier rounds summing to -3, this round's z -1.2: today's record is -4.2 / 2 =
    -2.1, below -2; with 0.5 a round it is (-4.2 + 2) / 2 = -1.1. A sender at -9.2 over
    four rounds (mu -2.3) is turned away at a margin of 1 too: (-9.2 + 4) / 2 = -2.6."""
    sums, counts, z = np.array([-3.0, -8.0]), np.array([3.0, 3.0]), np.array([-1.2, -1.2])
    assert margin_sequential_out(sums, counts, z, 2.0, 0.0).tolist() == [True, True]
    assert margin_sequential_out(sums, counts, z, 2.0, 0.5).tolist() == [False, True]
    assert margin_sequential_out(sums, counts, z, 2.0, 1.0).tolist() == [False, True]
    assert margin_sequential_out(sums, counts, z, 2.0, 1.5).tolist() == [False, False]
    first = margin_sequential_out(np.zeros(2), np.zeros(2), np.array([-2.4, -2.6]), 2.0, 0.5)
    assert first.tolist() == [False, True]  # a first round: -2.6 + 0.5 < -2


def test_a_larger_margin_never_turns_more_away():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        sums, counts = rng.normal(0, 4, n), rng.integers(0, 20, n).astype(float)
        z = rng.normal(0, 1, n)
        low, high = sorted(rng.uniform(0, 2, 2))
        assert not (margin_sequential_out(sums, counts, z, 2.0, high)
                    & ~margin_sequential_out(sums, counts, z, 2.0, low)).any()


def test_the_candidate_keeps_every_option_and_refuses_a_negative_margin():
    base = FairFL(tolerance=2.0, sequential=True, max_norm_ratio=None, chance_z=100.0,
                  clip_ratio=1.5)
    made = with_margin(base, 0.75)
    assert isinstance(made, MarginSequentialFairFL) and made.margin == 0.75
    for name in ("tolerance", "sequential", "max_norm_ratio", "chance_z", "clip_ratio"):
        assert getattr(made, name) == getattr(base, name)
    sums, counts, z = np.array([-3.0]), np.array([3.0]), np.array([-1.2])
    assert base.sequential_verdicts(sums, counts, z).tolist() == [True]
    assert made.sequential_verdicts(sums, counts, z).tolist() == [False]
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="margin"):
            with_margin(base, bad)


def _trace_run():
    """Three clients, client 2 attacking, four rounds; the z-scores of each round. Today's
    test (margin 0) turned client 2 away from round 2 on (-2.5, then -5 / sqrt 2 = -3.54,
    ...) and client 1 in round 3 ((-1 - 1 - 1.7) / sqrt 3 = -2.14); client 0 was turned
    away in round 4 by the round test alone."""
    z = [{0: 1.0, 1: -1.0, 2: -2.5}, {0: 0.5, 1: -1.0, 2: -2.5}, {0: 0.2, 1: -1.7, 2: -2.5},
         {0: 0.1, 1: 0.4, 2: -0.2}]
    out = [[2], [2], [1, 2], [2]]
    refused = [{2: "validation"}, {2: "validation"}, {1: "validation", 2: "validation"},
               {0: "validation", 2: "validation"}]
    trace = [{"z": {str(k): v for k, v in zi.items()}, "sequential_out": o,
              "refused": {str(k): v for k, v in r.items()}}
             for zi, o, r in zip(z, out, refused, strict=True)]
    return {"evidence": [[0, 0]] * 3, "malicious": [2], "sequential_trace": trace}


def test_replay_at_margin_zero_gives_back_the_runs_own_refusals():
    got = replay(_trace_run(), 0.0)
    assert (got.honest_refused, got.attack_refused, got.attack_submissions) == (2, 4, 4)
    assert got.fpr == pytest.approx(2 / 8) and got.banned == (2,)


def test_replay_with_a_margin_spares_a_slow_sender_keeps_the_round_tests_refusals():
    """At 0.5 a round client 1's record in round 3 is (-3.7 + 1.5) / sqrt 3 = -1.27: kept.
    Client 2 at -2.5 a round: round 1 -2.0 (not below -2), round 2 (-5 + 1) / sqrt 2 =
    -2.83, round 3 -3.46, round 4 (-7.7 + 2) / 2 = -2.85: three refusals, banned. Client 0's
    refusal by the round test stays."""
    got = replay(_trace_run(), 0.5)
    assert (got.honest_refused, got.attack_refused) == (1, 3)
    assert got.banned == (2,)
    from benchmarks.margin_sequential import honest_z

    spread = honest_z([_trace_run()])  # client 0: 1, .5, .2, .1; client 1: -1, -1, -1.7, .4
    assert spread["senders"] == 2
    assert spread["variance"]["max"] == pytest.approx(np.var([-1, -1, -1.7, 0.4], ddof=1))
    assert spread["median_z_by_round"] == [0.0, -0.25, -0.75, 0.25]
    rows = table([_trace_run()], [0.0, 0.5, 3.0])
    assert [r["honest_refused"] for r in rows] == [2, 1, 1]
    assert [r["tpr"] for r in rows] == [1.0, 0.75, 0.0]
    assert [r["median_tpr"] for r in rows] == [1.0, 0.75, 0.0]
    assert [r["attackers_banned"] for r in rows] == [1, 1, 0]
    assert rows[0]["highest_fpr"] == pytest.approx(0.25) and rows[0]["honest_banned"] == 0


def test_a_dp_run_records_the_trace_that_replays_to_its_own_verdicts():
    """A real run of the DP task's rule under sign flips at ε = 2: its recorded trace, replayed
    at margin 0, gives its own refusals and bans; the candidate at margin 0 decides as
    today's rule, and at a margin no record can reach its sequential test turns nobody
    away."""
    from benchmarks.privacy_dp import (
        DP_MARGIN,
        DP_NO_OUTLIERS,
        Setting,
        calibrate,
        honest_federation,
        measure_run,
    )

    setting = Setting(clients=5, rounds=4, steps=5, accountant="rdp", sequential_margin=0.0)
    calibration = calibrate([len(c.y) for c in honest_federation(1, setting).clients],
                            setting, 2.0)

    def run(strategy: str, margin: float = 0.0) -> dict:
        fed = honest_federation(1, setting, "sign_flip", 0.4, flip_scale=3.0)
        from dataclasses import replace
        return measure_run(fed, strategy, "ε = 2", replace(setting, sequential_margin=margin),
                           calibration)

    today = run(DP_NO_OUTLIERS)
    trace = today["sequential_trace"]
    assert len(trace) == 4 and all(len(step["z"]) == 5 for step in trace)
    assert today["refused_by_sequential"]["attack"] > 0  # the test has something to spare
    again = replay(today, 0.0)
    submissions = 4 * 3
    assert again.honest_refused == round(today["fpr"] * submissions)
    assert again.attack_refused == round(today["tpr"] * 4 * 2)
    assert list(again.banned) == today["would_blacklist"]
    candidate = run(DP_MARGIN, 0.0)
    for key in ("accuracy", "fpr", "tpr", "evidence", "would_blacklist", "sequential_trace"):
        assert candidate[key] == today[key]
    lenient = run(DP_MARGIN, 1e6)
    assert lenient["refused_by_sequential"] == {"honest": 0, "attack": 0}


def test_the_candidate_rule_needs_its_margin_named():
    """No default margin: a run of the candidate says which margin it used, and a run of
    another rule does not carry one."""
    from click.testing import CliRunner

    from benchmarks.privacy_dp import (
        DP_MARGIN,
        Setting,
        honest_federation,
        main,
        strategy_for,
    )

    fed = honest_federation(1, Setting(clients=3, rounds=1, steps=1))
    with pytest.raises(ValueError, match="needs a margin"):
        strategy_for(fed, DP_MARGIN)
    assert strategy_for(fed, DP_MARGIN, 0.25).margin == 0.25
    for args in (["--strategies", DP_MARGIN], ["--strategies", "fedavg",
                                               "--sequential-margin", "0.5"]):
        done = CliRunner().invoke(main, args)
        assert done.exit_code == 2 and "--sequential-margin goes with" in done.output

