"""benchmarks.gate_trace: the effect statistic, the summary, and a short traced run whose
verdicts must be the round decisions the run made."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.gate_trace import effect_z, label_distances, predictors, summary, trace_run


def test_effect_z_is_the_mean_paired_difference_over_its_standard_error():
    z, mean = effect_z(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    assert mean == 2.0
    assert z == pytest.approx(2.0 / (1.0 / math.sqrt(3)))  # sd 1 over sqrt(3)
    assert effect_z(np.ones(4), np.zeros(4)) == (0.0, 1.0)  # no spread: no z


def _update(z_val: float, z_test: float, verdict: str = "accepted",
            attacker: bool = False) -> dict:
    return {"z_val": z_val, "z_test": z_test, "verdict": verdict, "attacker": attacker}


def test_summary_counts_late_rounds_of_honest_clients_only():
    rounds = []
    for number, z in zip(range(1, 6), [-3.0, -1.0, -2.0, -1.5, -2.5], strict=True):
        rounds.append({"round": number, "updates": {
            0: _update(z, z / 2, "validation" if z < -1.2 else "accepted"),
            1: _update(-z, 0.3 * number),
            2: _update(5.0, 5.0, "validation", attacker=True)}})
    run = {"seed": 1, "attack": "x", "examples": [10, 20, 30], "attacker": [False, False, True],
           "would_ban": [0, 2], "per_round": rounds}
    out = summary(run, late_from=2)
    assert out["honest_would_ban"] == [0]
    assert set(out["per_client"]) == {0, 1}  # the attacker is left out
    zero = out["per_client"][0]
    assert (zero["rounds"], zero["validation_rejections"], zero["examples"]) == (4, 3, 10)
    assert zero["z_val"] == pytest.approx(np.mean([-1.0, -2.0, -1.5, -2.5]))
    assert zero["z_test"] == pytest.approx(zero["z_val"] / 2)
    # client 0's z test is half its z val, client 1's is unrelated: between 0 and 1
    assert out["corr_val_test"] is not None and -1.0 < out["corr_val_test"] < 1.0
    assert out["corr_val_next_round"] is not None


def test_a_traced_round_reports_the_decision_the_run_made():
    run = trace_run(seed=1, attack="sign_flip", rounds=2)
    assert [r["round"] for r in run["per_round"]] == [1, 2]
    for r in run["per_round"]:
        assert r["updates"], "every round traces the screened updates"
        assert r["rejected"], "the flips are turned away: the accepted are a strict subset"
        # the leave-one-out models are built on FairFL's own aggregate of the accepted
        assert r["aggregate_gap"] < 1e-5
        # the decision the run made (the round's rejections) is the verdict traced
        assert {c for c, u in r["updates"].items() if u["verdict"] != "accepted"} \
            <= set(r["rejected"])
        for u in r["updates"].values():
            assert 0.0 <= u["slack"] <= 2.0
            assert math.isfinite(u["z_val"]) and math.isfinite(u["z_test"])


def test_the_slack_s_median_leaves_out_the_updates_the_chance_test_turned_away():
    run = trace_run(seed=1, attack="gaussian", rounds=1)
    (r,) = run["per_round"]
    noise = [u["s"] for u in r["updates"].values() if u["verdict"] == "noise"]
    kept = [u["s"] for u in r["updates"].values() if u["verdict"] != "noise"]
    assert len(noise) == 6  # the six Gaussian senders, as FairFL decided
    assert r["median_s"] == pytest.approx(float(np.median(kept)))
    assert r["median_s"] != pytest.approx(float(np.median(kept + noise)))
    # sign flippers cost the held-out test examples in the first rounds: the statistic
    # must see it where no rule looked
    flips = [u["z_test"] for u in run["per_round"][0]["updates"].values() if u["attacker"]]
    assert flips and max(flips) < -10.0  # -15 to -26 here; honest ones -0.9 to -7.7


def test_label_distance_is_the_total_variation_from_the_federations_mix():
    from types import SimpleNamespace

    fed = SimpleNamespace(clients=[SimpleNamespace(y=[0, 0]), SimpleNamespace(y=[1, 1]),
                                   SimpleNamespace(y=[0, 1, 0, 1])])
    assert label_distances(fed) == pytest.approx([0.5, 0.5, 0.0])


def test_predictors_rank_the_honest_clients_rejection_rates():
    rounds = [{"round": number, "updates": {
        0: _update(0, 0, "validation"), 1: _update(0, 0, "validation" if number % 2 else
                                                   "accepted"),
        2: _update(0, 0), 3: _update(0, 0, "validation", attacker=True)}}
        for number in range(1, 5)]
    run = {"seed": 1, "attack": "x", "rounds": 4, "examples": [90, 50, 10, 99],
           "attacker": [False, False, False, True], "label_distance": [0.1, 0.2, 0.3, 0.0],
           "would_ban": [], "per_round": rounds}
    out = predictors([run], late_from=1)
    assert out["clients"] == 3  # the attacker is left out
    assert out["spearman_size"] == pytest.approx(1.0)  # the larger, the more rejected
    assert out["spearman_label_distance"] == pytest.approx(-1.0)
    none = predictors([run], late_from=99)  # no round that late: nothing to rank, not NaN
    assert none == {"clients": 0, "spearman_size": None, "spearman_label_distance": None}
