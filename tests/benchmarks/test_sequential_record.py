"""benchmarks.sequential_record: the sequential test's records against client size and label
mix, on hand-made records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks import sequential_record as sr


def test_label_distance_is_the_total_variation_between_label_mixes():
    from benchmarks.gate_trace import label_mix_distances

    # the federation's mix is the clients' pooled: here half and half
    assert label_mix_distances([np.array([0, 0]), np.array([1, 1])]) == pytest.approx(
        [0.5, 0.5])
    assert label_mix_distances([np.array([0, 1]), np.array([0, 1])]) == pytest.approx(
        [0.0, 0.0])
    # five 0s and three 1s pooled: (5/8, 3/8)
    assert label_mix_distances([np.array([0, 0, 0, 0]), np.array([0, 1]),
                                np.array([1, 1])]) == pytest.approx([3 / 8, 1 / 8, 5 / 8])


def test_client_rows_read_each_senders_statistic_size_mix_and_ban():
    labels = [np.array([0, 0, 0, 0]), np.array([0, 1]), np.array([1, 1])]
    rows = sr.client_rows(7, [[-4.0, 4], [3.0, 9], [0.0, 0]], labels, [0])
    assert [r["T"] for r in rows] == [pytest.approx(-2.0), pytest.approx(1.0), None]
    assert [r["examples"] for r in rows] == [4, 2, 2]
    # everyone: five 0s, three 1s
    assert rows[0]["label_distance"] == pytest.approx(3 / 8)
    assert [r["banned"] for r in rows] == [True, False, False]
    assert {r["seed"] for r in rows} == {7}


def test_the_summary_counts_senders_below_the_tolerance_and_ranks_them():
    rows = [{"seed": 1, "client": i, "T": t, "examples": n, "label_distance": d,
             "banned": t < -2}
            for i, (t, n, d) in enumerate([(-3.0, 10, 0.9), (-1.0, 20, 0.7), (1.0, 30, 0.5),
                                           (2.0, 40, 0.3)])]
    rows.append({"seed": 1, "client": 9, "T": None, "examples": 99, "label_distance": 0.0,
                 "banned": False})  # never scored: left out
    s = sr.summary(rows)
    assert s["clients"] == 4 and s["below_tolerance"] == 1
    assert s["spearman_examples"][0] == pytest.approx(1.0)
    assert s["spearman_label_distance"][0] == pytest.approx(-1.0)
    assert s["T_median"] == pytest.approx(0.0) and s["T_range"] == [-3.0, 2.0]
    assert [b["client"] for b in s["banned"]] == [0]


def _file(tmp_path, name, attack="none"):
    settings = {"clients": 4, "rounds": 2, "steps": 2, "batch_size": 32, "lr": 0.2,
                "dp_lr": 0.15, "clip": 1.0, "momentum": 0.0, "accountant": "prv",
                "delta": 1e-5, "model": "mlp", "hidden": [], "statistics": "train",
                "warm_start": 0, "gate_data": "all", "scale_floor": 0.0, "attack": attack}
    run = {"seed": 1, "strategy": "fairfl-dp-seq-no-outliers", "level": "ε = 8",
           "epsilon": 8.0, "evidence": [[1.0, 1], [-4.4, 4], [2.0, 4], [0.0, 1]],
           "would_blacklist": [1]}
    path = tmp_path / name
    path.write_text(json.dumps({"settings": settings, "runs": [run, {**run, "level": "no DP",
                                                                      "epsilon": None}]}))
    return path


def test_the_command_rebuilds_the_federation_and_reports_each_group(tmp_path):
    from benchmarks.privacy_dp import Setting, honest_federation, standardized

    _file(tmp_path, "a.json")
    out = tmp_path / "record.json"
    result = CliRunner().invoke(sr.main, ["--files", str(tmp_path / "a*.json"),
                                          "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 clients; T median" in result.output and "1 below -2" in result.output
    assert "banned: seed 1 client 1, T -2.20" in result.output
    [group] = json.loads(out.read_text()).values()
    sizes = [len(y) for _, y in standardized(honest_federation(1, Setting(clients=4)))[4]]
    assert [r["examples"] for r in group["rows"]] == sizes
    assert [r["T"] for r in group["rows"]] == pytest.approx([1.0, -2.2, 1.0, 0.0])
    assert math.isfinite(group["summary"]["spearman_examples"][0])


def test_runs_with_attackers_or_without_records_are_refused(tmp_path):
    _file(tmp_path, "bad.json", attack="sign_flip")
    result = CliRunner().invoke(sr.main, ["--files", str(tmp_path / "bad.json")])
    assert result.exit_code == 2 and "made with attackers" in result.output
    _file(tmp_path, "good.json")
    result = CliRunner().invoke(sr.main, ["--files", str(tmp_path / "good.json"),
                                          "--level", "ε = 2"])
    assert result.exit_code == 2 and "no run at 'ε = 2' records the evidence" in result.output
    result = CliRunner().invoke(sr.main, ["--files", str(tmp_path / "none*.json")])
    assert result.exit_code == 2 and "no file matches" in result.output
