"""The offline harness (fl_agent.simulation.offline) with rules the chain tests do not run."""

from __future__ import annotations

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

