"""Rule R53's judge (benchmarks/take_back.py): each criterion at and just past its margin,
on hand-made rows."""

from __future__ import annotations

import json

import pytest

from benchmarks import take_back as r53

RATIOS = (0.5, 0.9, 0.99)


def _runs():
    """A passing set: B changes nothing."""
    runs = {}
    for attack in r53.ATTACKS:
        sides = []
        for side in ("A", "B"):
            sides.append([{"seed": seed, "ratio": ratio, "take_back": side == "B",
                           "attack": attack, "strategy": "fairfl", "method": "topk-tensor",
                           "trigger_rounds": 2, "noise_rounds": 1,
                           "accuracy": 0.9, "rejections_by_reason": {"trigger": 2},
                           "honest_would_be_blacklisted": [3],
                           "tpr_attack_rounds": None if attack == "none" else 0.5}
                          for seed in (1, 2) for ratio in RATIOS])
        runs[attack] = tuple(sides)
    return runs


def _changed(changes):
    """:func:`_runs` with B's ``(attack, ratio, field)`` set to a value on every seed."""
    runs = _runs()
    for (attack, ratio, key), value in changes.items():
        for row in runs[attack][1]:
            if row["ratio"] == ratio:
                row[key] = value
    return runs


def test_a_change_that_changes_nothing_passes():
    ok, lines = r53.verdict(r53.figures(_runs()))
    assert ok and len(lines) == 3 * 3 + 2 * 3 * 2 and all(x.startswith("pass") for x in lines)


@pytest.mark.parametrize(("changes", "ok"), [
    ({("none", 0.99, "rejections_by_reason"): {"trigger": 1, "noise": 1}}, True),
    ({("none", 0.99, "rejections_by_reason"): {"trigger": 2, "noise": 1}}, False),
    ({("none", 0.5, "honest_would_be_blacklisted"): []}, True),
    ({("none", 0.5, "honest_would_be_blacklisted"): [3, 4]}, False),
    ({("none", 0.9, "accuracy"): 0.897}, True),
    ({("none", 0.9, "accuracy"): 0.8969}, False),
    ({("gaussian", 0.9, "tpr_attack_rounds"): 0.48}, True),
    ({("gaussian", 0.9, "tpr_attack_rounds"): 0.4799}, False),
    ({("gaussian-every-2", 0.99, "tpr_attack_rounds"): 0.4799}, False),
    ({("gaussian", 0.5, "accuracy"): 0.895}, True),
    ({("gaussian", 0.5, "accuracy"): 0.8949}, False),
    ({("gaussian-every-2", 0.5, "accuracy"): 0.8949}, False),
])
def test_each_criterion_at_and_just_past_its_margin(changes, ok):
    assert r53.verdict(r53.figures(_changed(changes)))[0] is ok


def test_files_are_read_by_side_and_a_mislabelled_run_is_refused(tmp_path, capsys):
    for attack, (a, b) in _runs().items():
        for side, rows in (("A", a), ("B", b)):
            (tmp_path / f"t_{attack}_{side}.json").write_text(json.dumps({"runs": rows}))
    r53.main([str(tmp_path), "--tag", "t"])
    assert "meets rule R53's criteria" in capsys.readouterr().out
    for attack, (a, _) in _runs().items():  # A's files under another prefix
        (tmp_path / f"old_{attack}_A.json").write_text(json.dumps({"runs": a}))
        (tmp_path / f"t_{attack}_A.json").unlink()
    r53.main([str(tmp_path), "--tag", "t", "--a-tag", "old"])
    assert "meets rule R53's criteria" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # B took back after any verdict, not only noise
        r53.main([str(tmp_path), "--tag", "t", "--a-tag", "old", "--after", "noise"])
    assert "another verdict than 'noise'" in capsys.readouterr().err
    a, b = _runs()["none"]
    for rows, message in ((b, "take back unused updates"),
                          ([{**r, "bare_attacks": True} for r in a], "through their residual"),
                          (_runs()["gaussian"][0], "other than FairFL under none"),
                          ([{**r, "noise_rounds": 2} for r in a], "different settings")):
        (tmp_path / "old_none_A.json").write_text(json.dumps({"runs": rows}))
        with pytest.raises(SystemExit):
            r53.main([str(tmp_path), "--tag", "t", "--a-tag", "old"])
        assert message in capsys.readouterr().err
