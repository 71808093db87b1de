"""The probing attacker's harness (benchmarks/probing.py): its attackers, its counts, its
choice of attacker and its refusals. Its figures are in docs/held-out.md (R51, R51a)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks.probing import (
    main,
    parse_variant,
    plain_sent,
    probing_clients,
    sent_by_attackers,
)
from fl_agent.errors import ConfigError
from fl_agent.simulation.attackers import Probing
from fl_agent.simulation.config import SimulationConfig, attack_settings
from fl_agent.simulation.offline import federation


def test_variants_are_plain_or_up_down_held():
    assert parse_variant("plain") is None
    assert parse_variant("1.25/0.8/1") == (1.25, 0.8, 1.0)
    for bad in ("1.5/0.5", "0.9/0.5/1", "1.5/1/1", "1.5/0.5/0", "x/y/z"):
        with pytest.raises(ConfigError):
            parse_variant(bad)


def test_only_the_attackers_probe_and_their_sends_are_counted_by_verdict():
    fed = federation(SimulationConfig(clients=8, seed=3, rounds=4,
                                      **attack_settings("sign_flip-from-3")))
    clients = probing_clients(fed, 1.5, 0.5, 1.0)
    probes = {i: c.poison for i, c in enumerate(clients) if isinstance(c.poison, Probing)}
    assert sorted(probes) == [i for i, c in enumerate(fed.clients) if c.malicious] != []
    assert all(p.first == 3 and (p.up, p.down, p.held) == (1.5, 0.5, 1.0)
               for p in probes.values())
    first, second = sorted(probes)[:2]
    probes[first].sent[:] = [[3, 1.0, "held_back"], [4, 0.5, "accepted"]]
    probes[second].sent[:] = [[3, 1.5, "rejected"]]
    counts = sent_by_attackers(clients)
    assert counts == {"attacks_sent": 3, "attacks_accepted": 1, "attacks_held_back": 1,
                      "attacks_rejected": 1, "attack_in": 0.5,
                      "sends": [[3, 1.0, "held_back", first], [4, 0.5, "accepted", first],
                                [3, 1.5, "rejected", second]]}


def test_the_plain_attack_is_counted_from_the_rules_verdicts_in_attack_rounds_only():
    from types import MappingProxyType, SimpleNamespace

    fed = federation(SimulationConfig(clients=8, seed=3, rounds=4,
                                      **attack_settings("sign_flip-from-3")))
    bad = [i for i, c in enumerate(fed.clients) if c.malicious]
    assert len(bad) == 2
    everyone = tuple(range(8))

    def row(number, reasons):
        decision = SimpleNamespace(accepted=tuple(j for j in everyone if j not in reasons),
                                   reasons=MappingProxyType(reasons))
        return SimpleNamespace(round=number, submitted=everyone, decision=decision)

    run = SimpleNamespace(rounds=[row(2, {bad[0]: "validation"}),  # before the attack
                                  row(3, {bad[0]: "held_back", bad[1]: "validation"}),
                                  row(4, {bad[1]: "free_rider"})])
    counts = plain_sent(fed, run)
    assert counts["sends"] == [[3, 1.0, "held_back", bad[0]], [3, 1.0, "rejected", bad[1]],
                               [4, 1.0, "accepted", bad[0]], [4, 1.0, "rejected", bad[1]]]
    assert (counts["attacks_accepted"], counts["attacks_held_back"],
            counts["attacks_rejected"], counts["attack_in"]) == (1, 1, 2, 1.0)


def test_the_harness_runs_both_rules_and_both_attackers(tmp_path, capsys):
    out = tmp_path / "probing.json"
    main(["--seeds", "3", "--attacks", "sign_flip-from-2", "--rounds", "3",
          "--held-back", "true,false", "--variants", "plain,1.5/0.5/1", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [(r["held_back"], r["attacker"]) for r in rows] == [
        (True, "plain"), (True, "1.5/0.5/1"), (False, "plain"), (False, "1.5/0.5/1")]
    for r in rows:  # six attackers of 20, in rounds 2 and 3 (unless banned)
        assert 6 <= r["attacks_sent"] <= 12
        assert r["loss"] == pytest.approx(r["without_attackers"] - r["accuracy"])
        assert r["test_size"] == 360
    assert "| sign_flip-from-2 | True | 1.5/0.5/1 |" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--variants", "2"], "UP/DOWN/HELD"), (["--held-back", "maybe"], "true, false"),
    (["--attacks", "none"], "needs an attack"), (["--attacks", "sign_flip-from-99"],
                                                  "never attack")])
def test_bad_settings_stop_before_any_run(args, message, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["probing"])
    with pytest.raises(SystemExit) as stop:
        main([*args, "--json", str(Path("/nonexistent/never.json"))])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_the_best_response_is_the_most_harmful_probing_attacker_per_attack_and_rule():
    from benchmarks.probing import best_response

    def row(attack, held_back, attacker, loss, asr=None, attack_in=1.0):
        return {"attack": attack, "held_back": held_back, "attacker": attacker,
                "loss": loss, "test_size": 360, "asr": asr, "attack_in": attack_in}

    rows = [  # plain is never chosen, however harmful
        row("flip", True, "plain", 0.5),
        row("flip", True, "a", 0.0), row("flip", True, "a", 0.02),  # median 3.6 -> 4
        row("flip", True, "b", 0.011, attack_in=3),  # 3.96 -> 4: a tie, broken by attack in
        row("flip", True, "c", 0.0083, attack_in=9),  # 2.99 -> 3
        row("flip", False, "a", 0.01, attack_in=5), row("flip", False, "b", 0.005, attack_in=9),
        row("door", True, "a", 0.05, asr=0.1), row("door", True, "b", 0.0, asr=0.3),
        row("door", False, "a", 0.0, asr=0.004), row("door", False, "b", 0.01, asr=0.0)]
    assert best_response(rows) == {("flip", True): "b", ("flip", False): "a",
                                   ("door", True): "b", ("door", False): "b"}


def _verdict_row(attack, held_back, seed, lost, *, success=None, attack_in=10.0,
                 reward=100_000):
    """A row whose accuracy fell by ``lost`` of 360 test examples (from 345 of 360, as
    float arithmetic makes it), with a success of ``success`` of 36 test 1s and a reward
    share of ``reward`` parts per million."""
    calm, accuracy = 345 / 360, (345 - lost) / 360
    return {"attack": attack, "held_back": held_back, "attacker": "x", "seed": seed,
            "loss": calm - accuracy, "test_size": 360,
            "asr": None if success is None else success / 36, "attack_in": attack_in,
            "malicious_reward": reward / 1e6}


def test_the_verdict_names_each_criterion_r50_fails_against_b():
    import random

    from benchmarks.probing import material_gain

    seeds = (11, 12, 13, 14, 15)
    b_lost = (-1, 0, 0, 1, -1)  # median 0
    rows = []
    for seed, lost in zip(seeds, b_lost, strict=True):
        for attack in ("targeted_flip-same", "targeted_flip-edge", "targeted_flip-past"):
            rows.append(_verdict_row(attack, False, seed, lost, success=2, attack_in=40,
                                     reward=200_000))
        rows.append(_verdict_row("sign_flip-every", False, seed, lost))
    # edge: exactly at every threshold (median loss +2 examples and not more on every
    # seed, success +0.05, attack in x1.25, rewards +2 points); past: just beyond each
    edge = dict(zip(seeds, (-1, 2, 2, 2, 2), strict=True))
    for seed, lost in zip(seeds, b_lost, strict=True):
        rows.append(_verdict_row("targeted_flip-same", True, seed, lost, success=2,
                                 attack_in=40, reward=200_000))
        rows.append(_verdict_row("targeted_flip-edge", True, seed, edge[seed], success=2,
                                 attack_in=50, reward=220_000))
        rows.append(_verdict_row("targeted_flip-past", True, seed, edge[seed] + 1, success=4,
                                 attack_in=50.1, reward=220_001))
        rows.append(_verdict_row("sign_flip-every", True, seed, lost + 1))  # more on each
    for row in rows:  # +0.05 is no whole count of 36: set the edge's success onto it
        if row["attack"] == "targeted_flip-edge" and row["held_back"]:
            row["asr"] = 2 / 36 + 0.05
    random.Random(0).shuffle(rows)
    chosen = {(r["attack"], r["held_back"]): "x" for r in rows}
    verdict = material_gain(rows, chosen)
    assert verdict["targeted_flip-same"]["material_gain"] == []
    assert verdict["targeted_flip-edge"]["material_gain"] == []
    assert verdict["targeted_flip-past"]["material_gain"] == ["loss", "success", "attack in",
                                                              "rewards"]
    assert verdict["sign_flip-every"]["material_gain"] == ["loss"]
    assert verdict["targeted_flip-edge"]["r50"]["loss_examples"] == [-1, 2, 2, 2, 2]
    assert verdict["targeted_flip-edge"]["r50"]["seeds"] == list(seeds)


def test_the_verdict_needs_five_distinct_seeds_and_the_best_responses_rows():
    from benchmarks.probing import material_gain

    chosen = {("sign_flip", True): "x", ("sign_flip", False): "x"}
    one = [_verdict_row("sign_flip", h, 11, 0) for h in (True, False)]
    with pytest.raises(ConfigError, match="5 distinct seeds"):
        material_gain(one, chosen)
    twice = [_verdict_row("sign_flip", h, s, 0) for h in (True, False)
             for s in (11, 11, 12, 13, 14)]
    with pytest.raises(ConfigError, match="5 distinct seeds"):
        material_gain(twice, chosen)
    with pytest.raises(ConfigError, match="no row of the best response y"):
        material_gain(one, {**chosen, ("sign_flip", True): "y"})
    with pytest.raises(ConfigError, match="no best response"):
        material_gain(one, {("sign_flip", True): "x"})


def test_best_response_ties_go_by_whole_examples_then_attack_in_then_name():
    from benchmarks.probing import best_response

    def row(attacker, loss, attack_in, asr=None):
        return {"attack": "flip", "held_back": True, "attacker": attacker, "loss": loss,
                "test_size": 360, "asr": asr, "attack_in": attack_in}

    # 2.4 and 1.6 examples are both 2: the larger attack in wins, though it lost less
    assert best_response([row("a", 2.4 / 360, 1), row("b", 1.6 / 360, 2)]) == {
        ("flip", True): "b"}
    # a full tie goes to the name that sorts first, whatever the order of the rows
    assert best_response([row("b", 0.0, 1), row("a", 0.0, 1)]) == {("flip", True): "a"}
    # success counts to 0.01: 0.104 and 0.096 tie, and the loss decides
    assert best_response([row("a", 0.0, 1, asr=0.104), row("b", 3 / 360, 1, asr=0.096)]) \
        == {("flip", True): "b"}
    with pytest.raises(ConfigError, match="some not"):
        best_response([row("a", 0.0, 1, asr=0.1), row("a", 0.0, 1)])
