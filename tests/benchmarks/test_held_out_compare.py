"""benchmarks.held_out_compare: arithmetic on held_out rows, matched by attack and seed."""

from __future__ import annotations

import json

import pytest

from benchmarks.held_out_compare import compare, load, main


def _row(attack, seed, honest=0, attackers=0, ratio=1.0, asr=None, reward=0.0, tpr=None):
    return {"attack": attack, "seed": seed, "benign_blacklisted": honest,
            "malicious_blacklisted": attackers, "ratio": ratio, "asr": asr,
            "malicious_reward": reward, "tpr": tpr}


def test_each_attacks_figures_and_the_rows_whose_bans_changed():
    before = [_row("a", 1, 1, 6, 0.99, 0.01, 0.1, 0.5), _row("a", 2, 0, 4, 0.97, 0.03, 0.3, 0.9),
              _row("none", 1, 2)]
    after = [_row("a", 1, 0, 6, 0.98, 0.02, 0.2, 0.4), _row("a", 2, 0, 3, 0.96, 0.05, 0.3, 0.8),
             _row("none", 1, 0)]
    result = compare(before, after)
    a = result["attacks"]["a"]
    assert a["before"] == {"honest_banned": 1, "attackers_banned": 10, "median_ratio": 0.98,
                           "max_asr": 0.03, "mean_reward": pytest.approx(0.2),
                           "min_tpr": 0.5}
    assert a["after"]["attackers_banned"] == 9 and a["after"]["max_asr"] == 0.05
    assert result["attacks"]["none"]["after"]["max_asr"] is None
    assert result["totals"] == {"before": {"honest_banned": 3, "attackers_banned": 10},
                                "after": {"honest_banned": 0, "attackers_banned": 9}}
    assert [(c["attack"], c["seed"]) for c in result["changed"]] == [("a", 1), ("a", 2),
                                                                     ("none", 1)]


def test_rows_that_do_not_pair_are_refused():
    with pytest.raises(ValueError, match="attacks differ"):
        compare([_row("a", 1)], [_row("b", 1)])
    with pytest.raises(ValueError, match="seeds differ"):
        compare([_row("a", 1)], [_row("a", 2)])
    with pytest.raises(ValueError, match="two rows"):
        compare([_row("a", 1), _row("a", 1)], [_row("a", 1)])


def test_published_files_are_read_by_key(tmp_path, capsys):
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"note": "x", "k1": {"rows": [_row("a", 1, 1)]},
                                "k2": {"rows": [_row("a", 2)]}}))
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"settings": {}, "rows": [_row("a", 1), _row("a", 2)]}))
    assert len(load(f"{data}:k1+k2")) == 2
    main(["--before", f"{data}:k1+k2", "--after", str(run), "--json", str(tmp_path / "c.json")])
    assert "honest banned 1 → 0" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())["changed"][0]["seed"] == 1
