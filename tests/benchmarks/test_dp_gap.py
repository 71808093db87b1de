"""Rule R54's judge (benchmarks.dp_gap): pairs, bounds and verdicts on hand-made rows."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import dp_gap


def _run(seed: int, accuracy: float, epsilon: float | None, strategy: str = "fedavg",
         level: str | None = None) -> dict:
    level = level or ("no DP" if epsilon is None else f"ε = {epsilon:g}")
    return {"seed": seed, "strategy": strategy, "level": level, "epsilon": epsilon,
            "accuracy": accuracy}


def _file(tmp_path, name: str, runs: list[dict], **settings) -> object:
    base = {key: None for key in dp_gap.SAME} | {"clients": 10, "rounds": 20} | settings
    path = tmp_path / name
    path.write_text(json.dumps({"settings": base, "runs": runs}))
    return path


def test_gap_pairs_each_strategy_with_its_own_no_dp_run_on_the_same_seed():
    runs = [_run(1, 0.95, None), _run(1, 0.91, 8.0), _run(2, 0.96, None), _run(2, 0.90, 8.0),
            _run(1, 0.80, None, "fairfl"), _run(1, 0.79, 8.0, "fairfl"),
            _run(3, 0.97, None), _run(3, 0.50, 4.0),  # seed 3 has no ε = 8: left out
            _run(1, 0.20, None, level="σ = 0"), _run(2, 0.30, None, level="σ = 0")]
    got = dp_gap.gaps(runs)
    assert set(got) == {"fedavg", "fairfl"}
    # clipping alone (σ = 0, no ε either) is not the baseline
    assert got["fedavg"] == pytest.approx({1: 0.04, 2: 0.06})
    assert got["fairfl"] == pytest.approx({1: 0.01})


def test_a_run_given_twice_is_refused_not_overwritten():
    with pytest.raises(ValueError, match="twice"):
        dp_gap.gaps([_run(1, 0.95, None), _run(1, 0.91, 8.0), _run(1, 0.93, 8.0)])


@pytest.mark.parametrize(("values", "verdict"), [
    ([0.040, 0.042, 0.044, 0.046], "met with confidence"),
    ([0.02, 0.07, 0.03, 0.06], "met by the mean"),      # mean 0.045, bound above 0.05
    ([0.050, 0.052, 0.054, 0.056], "not met"),
    ([0.030, 0.031, 0.032, 0.080], "met by the mean"),  # mean 0.04325, median 0.0315
    ([0.040, 0.052, 0.053, 0.054], "met by the mean"),  # mean 0.04975, median 0.0525
    ([0.055, 0.056, 0.057, 0.010], "met by the mean"),  # median 0.0555, mean 0.0445:
    ([0.045, 0.046, 0.047, 0.090], "not met"),          # median 0.0465, mean 0.057
])                                                      # the mean decides, not the median
def test_verdict_reads_the_mean_and_its_one_sided_bound(values, verdict):
    figures = dp_gap.summary(dict(enumerate(values)))
    assert figures["verdict"] == verdict
    mean = sum(values) / len(values)
    assert figures["mean"] == pytest.approx(mean)
    assert figures["median"] == pytest.approx(sorted(values)[1] / 2 + sorted(values)[2] / 2)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    # t(0.95, 3 degrees of freedom) = 2.3534, from a printed table
    assert figures["upper"] == pytest.approx(mean + 2.3534 * sd / 2, abs=1e-4)


def test_a_gap_of_exactly_five_points_is_within_the_goal_and_just_above_is_not():
    assert 345 / 360 - 327 / 360 > 0.05  # 18 test examples of 360, a float just above 0.05
    exact = dp_gap.summary({1: 345 / 360 - 327 / 360, 2: 0.04})
    assert exact["within"] == 2 and exact["every_seed"]
    above = dp_gap.summary({1: 0.0501, 2: 0.04})
    assert above["within"] == 1 and not above["every_seed"]


def test_one_seed_gives_no_bound():
    with pytest.raises(ValueError, match="two seeds"):
        dp_gap.summary({1: 0.04})
    assert "no verdict" in dp_gap.report({"fedavg": {1: 0.04}})


@pytest.mark.parametrize(("key", "value"), [
    ("rounds", 30), ("dp_lr", 0.3), ("clip", 2.0), ("accountant", "rdp"), ("model", "logreg"),
    ("attack", "sign_flip"), ("alpha", 0.1), ("pad", True), ("flip_scale", 10.0),
    ("statistics", "validation"), ("warm_start", 100),
    ("gate_data", "half")])
def test_files_with_other_settings_are_refused(tmp_path, key, value):
    a = _file(tmp_path, "a.json", [_run(1, 0.95, None), _run(1, 0.91, 8.0)])
    other = _file(tmp_path, "b.json", [_run(2, 0.95, None)], **{key: value})
    with pytest.raises(ValueError, match=key):
        dp_gap.load([a, other])


def test_a_run_measured_twice_across_files_is_refused(tmp_path):
    a = _file(tmp_path, "a.json", [_run(1, 0.95, None), _run(1, 0.91, 8.0)])
    again = _file(tmp_path, "c.json", [_run(1, 0.95, None)])
    with pytest.raises(ValueError, match="twice"):
        dp_gap.load([a, again])


def test_the_cli_reads_several_files_and_prints_the_verdict(tmp_path, capsys):
    a = _file(tmp_path, "a.json", [_run(1, 0.95, None), _run(1, 0.91, 8.0)])
    b = _file(tmp_path, "b.json", [_run(2, 0.96, None), _run(2, 0.92, 8.0)])
    picture = tmp_path / "gaps.png"
    dp_gap.main([str(a), str(b), "--plot", str(picture)])
    out = capsys.readouterr().out
    assert "fedavg: gap at ε = 8 per seed (points): 1 4.0, 2 4.0" in out
    assert "met with confidence; every seed: yes" in out
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("text", ["not json", json.dumps({"rows": []}),
                                  json.dumps({"settings": {}, "runs": [{"seed": 1}]}),
                                  json.dumps({"settings": [], "runs": []})])
def test_a_file_that_is_not_the_benchmarks_output_is_refused_with_its_name(tmp_path, text,
                                                                         capsys):
    good = _file(tmp_path, "a.json", [_run(1, 0.95, None), _run(1, 0.91, 8.0)])
    wrong = tmp_path / "wrong.json"
    wrong.write_text(text)
    with pytest.raises(SystemExit) as stop:
        dp_gap.main([str(good), str(wrong)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "wrong.json: not a benchmarks.privacy_dp JSON file" in err


def test_the_goal_is_the_benchmarks():
    from benchmarks.privacy_dp import GAP_AT_8_MAX
    assert dp_gap.GOAL == GAP_AT_8_MAX


def test_a_baseline_replaces_the_files_own_no_dp_runs(tmp_path):
    narrow = [_run(1, 0.99, None), _run(1, 0.93, 8.0), _run(2, 0.99, None), _run(2, 0.92, 8.0),
              _run(1, 0.99, None, "fairfl"), _run(1, 0.90, 8.0, "fairfl")]
    # the baseline's ε = 8 runs are not read, nor a strategy the main files lack
    wide = [_run(1, 0.96, None), _run(1, 0.10, 8.0), _run(2, 0.97, None),
            _run(1, 0.95, None, "fairfl"), _run(1, 0.95, None, "krum")]
    got = dp_gap.gaps(narrow, wide)
    assert got == {"fedavg": pytest.approx({1: 0.03, 2: 0.05}),
                   "fairfl": pytest.approx({1: 0.05})}
    assert dp_gap.gaps(narrow)["fedavg"] == pytest.approx({1: 0.06, 2: 0.07})


@pytest.mark.parametrize("model", [{"hidden": [16], "lr": 0.4, "dp_lr": 0.3},
                                   {"model": "logreg", "lr": 0.4, "dp_lr": 0.2},
                                   {"statistics": "validation"},  # R61
                                   {"warm_start": 100}])  # R62
def test_the_cli_takes_a_baseline_of_another_model(tmp_path, capsys, model):
    other = _file(tmp_path, "other.json", [_run(1, 0.99, None), _run(1, 0.93, 8.0),
                                           _run(2, 0.99, None), _run(2, 0.92, 8.0)], **model)
    mlp = _file(tmp_path, "mlp.json", [_run(1, 0.96, None), _run(2, 0.97, None)],
                model="mlp", lr=0.2, dp_lr=0.15)
    dp_gap.main([str(other), "--baseline", str(mlp)])
    out = capsys.readouterr().out
    assert "fedavg: gap at ε = 8 per seed (points): 1 3.0, 2 5.0" in out
    assert "goal (within 5 points of the baseline's no DP)" in out


@pytest.mark.parametrize(("key", "value"), [
    ("clients", 20), ("steps", 10), ("attack", "sign_flip"), ("malicious", 0.3),
    ("partition", "iid"), ("accountant", "rdp")])
def test_a_baseline_of_another_federation_is_refused(tmp_path, capsys, key, value):
    narrow = _file(tmp_path, "narrow.json", [_run(1, 0.99, None), _run(1, 0.93, 8.0)],
                   hidden=[16])
    other = _file(tmp_path, "other.json", [_run(1, 0.96, None)], **{key: value})
    with pytest.raises(SystemExit) as stop:
        dp_gap.main([str(narrow), "--baseline", str(other)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "other.json: a baseline must share the federation" in err and key in err


def test_a_baseline_missing_a_seed_is_refused_not_read_on_fewer_seeds(tmp_path, capsys):
    narrow = [_file(tmp_path, f"n{seed}.json", [_run(seed, 0.99, None), _run(seed, 0.93, 8.0)],
                    hidden=[16]) for seed in (1, 2, 3)]
    half = _file(tmp_path, "half.json", [_run(1, 0.96, None), _run(2, 0.97, None)])
    with pytest.raises(SystemExit) as stop:
        dp_gap.main([*map(str, narrow), "--baseline", str(half)])
    assert stop.value.code == 2
    assert "the baseline has no no-DP run for fedavg seed 3" in capsys.readouterr().err


def test_the_default_widths_are_the_models():
    from fl_agent.learning.models import ModelSpec

    for name, widths in dp_gap.DEFAULT_WIDTHS.items():
        assert list(ModelSpec.for_features(name, (64,), 10).hidden) == widths


def test_a_file_made_before_hidden_existed_reads_as_the_default_width(tmp_path):
    old = tmp_path / "old.json"
    before = {key: None for key in dp_gap.SAME if key != "hidden"} | {"clients": 10,
                                                                      "rounds": 20}
    old.write_text(json.dumps({"settings": before, "runs": [_run(1, 0.95, None)]}))
    new = _file(tmp_path, "new.json", [_run(2, 0.95, None)], hidden=[])
    named = _file(tmp_path, "named.json", [_run(4, 0.95, None)], model="mlp", hidden=[64])
    assert len(dp_gap.load([old, new, named])) == 3  # the MLP's 64 units, however recorded
    trained = _file(tmp_path, "trained.json", [_run(5, 0.95, None)], statistics="train")
    assert len(dp_gap.load([old, trained])) == 2  # made before R61: the training split's
    cold = _file(tmp_path, "cold.json", [_run(6, 0.95, None)], warm_start=0)
    assert len(dp_gap.load([old, cold])) == 2  # made before R62: the seeded start
    whole = _file(tmp_path, "whole.json", [_run(7, 0.95, None)], gate_data="all")
    assert len(dp_gap.load([old, whole])) == 2  # made before R62b: the gate read it all
    wider = _file(tmp_path, "wider.json", [_run(3, 0.95, None)], hidden=[16])
    with pytest.raises(ValueError, match="hidden"):
        dp_gap.load([old, wider])


def test_the_gain_over_a_warm_start_is_reported_with_its_lower_bound(tmp_path, capsys):
    """R62's clause 3: ε = 8 accuracy minus the start's, per seed; the lower bound by hand
    (mean 2 points, sd 1 point over three seeds, t at 95 % with 2 degrees of freedom
    2.919986): 2 - 2.919986 / sqrt(3) = 0.3141 points."""
    def warm(seed: int, accuracy: float, epsilon: float | None, start: float) -> dict:
        return _run(seed, accuracy, epsilon) | {"start_accuracy": start}

    runs = [warm(1, 0.95, None, 0.90), warm(1, 0.91, 8.0, 0.90),
            warm(2, 0.96, None, 0.90), warm(2, 0.92, 8.0, 0.90),
            warm(3, 0.97, None, 0.90), warm(3, 0.93, 8.0, 0.90)]
    got = dp_gap.gains_over_start(runs)
    assert list(got) == ["fedavg"]
    assert got["fedavg"] == pytest.approx({1: 0.01, 2: 0.02, 3: 0.03})
    assert dp_gap.gains_over_start([_run(1, 0.91, 8.0)]) == {}  # a seeded start: nothing
    path = _file(tmp_path, "warm.json", runs, warm_start=100)
    dp_gap.main([str(path)])
    out = capsys.readouterr().out
    assert "per seed (points): 1 +1.0, 2 +2.0, 3 +3.0" in out
    assert "mean +2.00 (one-sided 95% lower bound +0.31); above the start on 3 of 3" in out
    below = _file(tmp_path, "below.json", [warm(1, 0.95, None, 0.9), warm(1, 0.89, 8.0, 0.9),
                                           warm(2, 0.95, None, 0.9), warm(2, 0.91, 8.0, 0.9)])
    dp_gap.main([str(below)])
    assert "above the start on 1 of 2 seeds" in capsys.readouterr().out
    cold = _file(tmp_path, "cold.json", [_run(1, 0.95, None), _run(1, 0.91, 8.0)])
    dp_gap.main([str(cold)])
    assert "what the federation adds" not in capsys.readouterr().out


def test_best_measures_every_strategy_against_the_most_accurate_no_dp_run_of_its_seed():
    """R64: the no-DP accuracy is the highest of any strategy on the seed, in the files and
    the baseline together; the baseline's ε = 8 runs are not read."""
    warm = [_run(1, 0.96, None), _run(1, 0.93, 8.0), _run(2, 0.97, None), _run(2, 0.94, 8.0),
            _run(1, 0.95, None, "fairfl"), _run(1, 0.92, 8.0, "fairfl"),
            _run(2, 0.99, None, "fairfl"), _run(2, 0.95, 8.0, "fairfl")]
    seeded = [_run(1, 0.98, None, "fairfl"), _run(1, 0.10, 8.0), _run(2, 0.96, None)]
    got = dp_gap.best_gaps(warm, seeded)
    assert got == {"fairfl": pytest.approx({1: 0.06, 2: 0.04}),  # 0.98 (seeded), 0.99 (own)
                   "fedavg": pytest.approx({1: 0.05, 2: 0.05})}  # 0.98 (seeded), 0.99 (fairfl)
    assert dp_gap.best_gaps(warm) == {"fairfl": pytest.approx({1: 0.04, 2: 0.04}),
                                      "fedavg": pytest.approx({1: 0.03, 2: 0.05})}
    with pytest.raises(ValueError, match="no no-DP run for seed 3 in the files"):
        dp_gap.best_gaps([*warm, _run(3, 0.9, 8.0)], [*seeded, _run(3, 0.99, None)])
    with pytest.raises(ValueError, match="the baseline has no no-DP run for seed 2"):
        dp_gap.best_gaps(warm, seeded[:2])  # one baseline file left off: refused, not read
    with pytest.raises(ValueError, match="twice"):
        dp_gap.best_gaps([*warm, _run(1, 0.9, 8.0)])


def test_the_cli_measures_against_the_best_no_dp_run_with_a_baseline(tmp_path, capsys):
    warm = _file(tmp_path, "warm.json", [_run(1, 0.96, None), _run(1, 0.93, 8.0),
                                         _run(2, 0.97, None), _run(2, 0.94, 8.0)],
                 warm_start=100)
    seeded = _file(tmp_path, "seeded.json", [_run(1, 0.99, None), _run(2, 0.96, None)])
    dp_gap.main([str(warm), "--baseline", str(seeded), "--best"])
    out = capsys.readouterr().out
    assert "fedavg: gap at ε = 8 per seed (points): 1 6.0, 2 3.0" in out
    assert "of the best no DP of any strategy and baseline" in out


def test_the_honest_record_at_eps_8_reads_fpr_and_bans_of_honest_clients_only():
    def judged(seed, fpr, banned, strategy="fairfl", epsilon=8.0, malicious=()):
        return _run(seed, 0.9, epsilon, strategy) | {
            "fpr": fpr, "would_blacklist": banned,
            **({"malicious": list(malicious)} if malicious else {})}

    runs = [judged(1, 0.0, []), judged(2, 0.051, [3]), judged(3, 0.05, [1, 2], malicious=[2]),
            judged(1, 0.9, [0, 1, 2], epsilon=None),  # no DP: not read
            judged(1, 0.01, [], "fedavg"), _run(2, 0.9, 8.0)]  # a run without the fields
    got = dp_gap.honest_record(runs)
    assert got == {"fairfl": {"seeds": 3, "highest_fpr": 0.051, "above": [2], "banned": 2},
                   "fedavg": {"seeds": 1, "highest_fpr": 0.01, "above": [], "banned": 0}}
