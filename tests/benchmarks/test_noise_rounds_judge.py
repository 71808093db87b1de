"""Rule R52's judge (benchmarks/noise_rounds.py): each criterion at and just past its margin,
on hand-made rows."""

from __future__ import annotations

import json

import pytest

from benchmarks import noise_rounds as r52

RATIOS = (0.5, 0.9, 0.99)


def _row(seed, ratio, n, *, accuracy=0.9, noise=0, trigger=0, tpr=None, tpr_rounds=None):
    reasons = {k: v for k, v in (("noise", noise), ("trigger", trigger)) if v}
    return {"seed": seed, "ratio": ratio, "noise_rounds": n, "accuracy": accuracy,
            "rejections_by_reason": reasons, "tpr": tpr, "tpr_attack_rounds": tpr_rounds}


def _runs():
    """A passing set: B halves the honest NOISE rejections at 0.99 and changes nothing else."""
    runs = {}
    for attack in r52.ATTACKS:
        sides = []
        for n in (1, 2):
            rows = []
            for seed in (1, 2):
                for ratio in RATIOS:
                    fields = {"noise": 2 if (ratio, n) == (0.99, 2) else 4 if ratio == 0.99
                              else 0, "trigger": 1}
                    if attack != "none":
                        fields.update(tpr=0.9, tpr_rounds=0.5)
                    rows.append(_row(seed, ratio, n, **fields))
            sides.append(rows)
        runs[attack] = tuple(sides)
    return runs


def _changed(changes):
    """:func:`_runs` with B's ``(attack, ratio, field)`` set to a value on every seed."""
    runs = _runs()
    for (attack, ratio, key), value in changes.items():
        for row in runs[attack][1]:
            if row["ratio"] == ratio:
                if key in ("noise", "trigger"):
                    row["rejections_by_reason"][key] = value
                else:
                    row[key] = value
    return runs


def test_a_rule_that_halves_the_honest_noise_rejections_and_changes_nothing_else_passes():
    ok, lines = r52.verdict(r52.figures(_runs()))
    assert ok and all(line.startswith("pass") for line in lines)


@pytest.mark.parametrize(("changes", "ok"), [
    ({("none", 0.99, "noise"): 2}, True),  # 4 of 8 honest NOISE rejections: exactly half
    ({("none", 0.99, "noise"): 3}, False),
    ({("none", 0.5, "trigger"): 2}, False),  # more honest rejections at another ratio
    ({("gaussian", 0.9, "tpr"): 0.88}, True),
    ({("gaussian", 0.9, "tpr"): 0.8799}, False),
    ({("gaussian-every-2", 0.99, "tpr_attack_rounds"): 0.45}, True),
    ({("gaussian-every-2", 0.99, "tpr_attack_rounds"): 0.4499}, False),
    ({("none", 0.9, "accuracy"): 0.895}, True),
    ({("none", 0.9, "accuracy"): 0.8949}, False),
    ({("gaussian", 0.5, "accuracy"): 0.89}, True),
    ({("gaussian", 0.5, "accuracy"): 0.8899}, False),
    ({("gaussian-every-2", 0.5, "accuracy"): 0.89}, True),
    ({("gaussian-every-2", 0.5, "accuracy"): 0.8899}, False),
])
def test_each_criterion_at_and_just_past_its_margin(changes, ok):
    assert r52.verdict(r52.figures(_changed(changes)))[0] is ok


def test_runs_that_do_not_pair_are_refused(tmp_path):
    runs = _runs()
    runs["gaussian"][1].pop()
    with pytest.raises(ValueError, match="different seeds"):
        r52.figures(runs)
    for attack, (a, b) in _runs().items():
        for n, rows in ((1, a), (2, b)):
            (tmp_path / f"t_{attack}_n{n}.json").write_text(json.dumps({"runs": rows}))
    assert r52.verdict(r52.figures(r52.load(tmp_path, "t")))[0]
    (tmp_path / "t_none_n2.json").write_text(json.dumps({"runs": _runs()["none"][0]}))
    with pytest.raises(ValueError, match="noise_rounds other than 2"):
        r52.load(tmp_path, "t")
