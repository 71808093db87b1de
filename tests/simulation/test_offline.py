"""The offline harness (fl_agent.simulation.offline) with rules the chain tests do not run."""

from __future__ import annotations

import numpy as np
import pytest

from fl_agent.simulation.offline import aggregator_strategy, federation, run_offline
from fl_agent.simulation.runner import SimulationConfig


def test_fltrust_runs_with_the_aggregators_validation_split_as_its_root_data():
    """FLTrust needs a server update; the aggregator trains one from the global model on its
    own validation split (no oracle): it must turn label flippers away, and no honest
    client."""
    config = SimulationConfig(clients=10, attack="label_flip", seed=1, aggregator="fltrust",
                              rounds=2, steps=10)
    fed = federation(config)
    assert callable(aggregator_strategy(fed).server_update)
    run = run_offline(fed, blacklist=False)
    malicious = {i for i, c in enumerate(fed.clients) if c.malicious}
    for r in run.rounds:
        rejected = set(r.submitted) - {r.submitted[j] for j in r.decision.accepted}
        assert rejected and rejected <= malicious, (r.round, rejected, malicious)



@pytest.mark.parametrize("attack", ["alie", "ipm"])
def test_colluders_train_honestly_then_all_submit_one_crafted_update(attack):
    config = SimulationConfig(clients=8, malicious=0.25, attack=attack, seed=2, rounds=1,
                              steps=5)
    fed = federation(config)
    bad = [c for c in fed.clients if c.malicious]
    assert len(bad) == 2
    g = np.zeros(10, np.float32)
    calls = []

    def trainer(global_vector, X, y, seed, round_number):
        calls.append((seed, round_number))
        return global_vector + float(seed % 7) + 1.0
    from fl_agent.simulation.attacks import Attack, collude
    from fl_agent.simulation.runner import Collusion

    colluders = [(c.X, c.y, c.seed) for c in bad]
    collusion = Collusion(Attack(attack), colluders, trainer, config.clients)
    first = collusion.crafted(g, g)
    assert np.array_equal(collusion.crafted(g, g + 5), first)  # one crafted update per round
    assert calls == [(c.seed, 1) for c in bad]
    honest = np.stack([g + float(c.seed % 7) + 1.0 for c in bad])
    assert np.array_equal(first, collude(Attack(attack), g, honest, num_clients=8))
    collusion.crafted(g + 1, g)  # a new global model: a new round
    assert calls[-1][1] == 2
    # Wired into the federation: every colluder's poison is the shared collusion.
    assert all(c.poison is not None for c in bad)
    assert len({c.poison.__self__ for c in bad}) == 1
