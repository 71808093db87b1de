"""benchmarks.held_out's per-run counts, on a hand-made run (no training)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from benchmarks.held_out import banned_among, detection


def _round(number: int, submitted: tuple[int, ...], accepted: tuple[int, ...]) -> object:
    positions = tuple(submitted.index(i) for i in accepted)
    return SimpleNamespace(round=number, submitted=submitted,
                           decision=SimpleNamespace(accepted=positions))


def test_detection_counts_attack_rounds_only_and_names_each_ban_with_its_last_round():
    """Clients 0-2 honest, 3 and 4 attack from round 2. Client 1 (honest) is rejected in
    rounds 1-3 and banned after round 3; client 3, rejected in rounds 2-3, is banned after
    round 3 too (a hand-made run: the registry would want a third rejection); client 4
    passes round 2 and is rejected in round 3."""
    fed = SimpleNamespace(clients=[SimpleNamespace(malicious=m)
                                   for m in (False, False, False, True, True)],
                          config=SimpleNamespace(attacks_in=lambda r: r >= 2))
    rounds = (_round(1, (0, 1, 2, 3, 4), (0, 2, 3, 4)),
              _round(2, (0, 1, 2, 3, 4), (0, 2, 4)),
              _round(3, (0, 1, 2, 3, 4), (0, 2)),
              _round(4, (0, 2, 4), (0, 2, 4)))
    run = SimpleNamespace(rounds=rounds, blacklisted=(1, 3),
                          earned=lambda: np.array([4.0, 0.0, 4.0, 1.0, 1.0]))
    got = detection(fed, run)
    assert got["tpr"] == 3 / 5  # rounds 2-4: client 3 twice, client 4 once, of 5 attacks
    assert got["fpr"] == 3 / 11  # client 1 in rounds 1-3, of 11 honest submissions
    assert got["malicious_reward"] == 0.2
    assert got["benign_blacklisted"] == 1 and got["malicious_blacklisted"] == 1
    assert got["banned_after_round"] == {"1": 3, "3": 3}
    assert banned_among([0, 1, 3], got["banned_after_round"]) == [1, 3]
    never = SimpleNamespace(rounds=rounds[:1], blacklisted=(5,), earned=run.earned)
    assert detection(fed, never)["banned_after_round"] == {"5": None}
