"""The probing attacker's harness (benchmarks/probing.py): its attackers, its counts and
its refusals. Its figures are in docs/held-out.md (R51)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks.probing import main, parse_variant, probing_clients, sent_by_attackers
from fl_agent.errors import ConfigError
from fl_agent.simulation.attackers import Probing
from fl_agent.simulation.config import SimulationConfig, attack_settings
from fl_agent.simulation.offline import federation


def test_variants_are_plain_or_up_over_down():
    assert parse_variant("plain") is None
    assert parse_variant("1.5/0.5") == (1.5, 0.5)
    for bad in ("1.5", "0.9/0.5", "1.5/1", "x/y"):
        with pytest.raises(ConfigError):
            parse_variant(bad)


def test_only_the_attackers_probe_and_their_sends_are_counted_by_verdict():
    fed = federation(SimulationConfig(clients=8, seed=3, rounds=4,
                                      **attack_settings("sign_flip-from-3")))
    clients = probing_clients(fed, 1.5, 0.5)
    probes = [c.poison for c in clients if isinstance(c.poison, Probing)]
    assert len(probes) == sum(c.malicious for c in fed.clients) > 0
    assert all(p.first == 3 and p.window_rounds == fed.config.window_rounds + 1
               for p in probes)
    probes[0].sent[:] = [[3, 1.0, "held_back"], [4, 0.5, "accepted"]]
    probes[1].sent[:] = [[3, 1.0, "rejected"]]
    counts = sent_by_attackers(clients)
    assert counts == {"attacks_sent": 3, "attacks_accepted": 1, "attacks_held_back": 1,
                      "attacks_rejected": 1, "attack_in": 0.5,
                      "strength_mean": pytest.approx(0.8333, abs=1e-4)}


def test_the_harness_runs_both_rules_and_both_attackers(tmp_path, capsys):
    out = tmp_path / "probing.json"
    main(["--seeds", "3", "--attacks", "sign_flip-from-2", "--rounds", "3",
          "--held-back", "true,false", "--variants", "plain,1.5/0.5", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [(r["held_back"], r["attacker"]) for r in rows] == [
        (True, "plain"), (True, "1.5/0.5"), (False, "plain"), (False, "1.5/0.5")]
    for r in rows:  # six attackers of 20, in rounds 2 and 3 (unless banned)
        assert 0 < r["attacks_sent"] <= 12
        assert r["attacks_sent"] == r["attacks_accepted"] + r["attacks_held_back"] \
            + r["attacks_rejected"]
    assert "| sign_flip-from-2 | True | 1.5/0.5 |" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--variants", "2"], "UP/DOWN"), (["--held-back", "maybe"], "true, false"),
    (["--attacks", "none"], "needs an attack"), (["--attacks", "sign_flip-from-99"],
                                                  "never attack")])
def test_bad_settings_stop_before_any_run(args, message, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["probing"])
    with pytest.raises(SystemExit) as stop:
        main([*args, "--json", str(Path("/nonexistent/never.json"))])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def _row(attack, held_back, attacker, ratio, asr=None, attack_in=1.0):
    return {"attack": attack, "held_back": held_back, "attacker": attacker, "ratio": ratio,
            "asr": asr, "attack_in": attack_in}


def test_the_best_response_is_the_most_harmful_probing_attacker_per_attack_and_rule():
    from benchmarks.probing import best_response

    rows = [  # plain is never chosen, however harmful
        _row("flip", True, "plain", 0.5), _row("flip", True, "a", 0.99),
        _row("flip", True, "a", 0.97), _row("flip", True, "b", 0.98),
        _row("flip", True, "b", 0.98),  # medians: a 0.98, b 0.98: tie, by attack in
        _row("flip", False, "a", 0.99, attack_in=5), _row("flip", False, "b", 0.995,
                                                          attack_in=9),
        _row("door", True, "a", 0.90, asr=0.1), _row("door", True, "b", 0.99, asr=0.3),
        _row("door", False, "a", 0.99, asr=0.0), _row("door", False, "b", 0.98, asr=0.0)]
    rows[3]["attack_in"] = rows[4]["attack_in"] = 3.0
    assert best_response(rows) == {("flip", True): "b", ("flip", False): "a",
                                   ("door", True): "b", ("door", False): "b"}
