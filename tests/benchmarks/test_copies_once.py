"""benchmarks.copies_once: its two variants are the task's FairFL with the option on and off,
and a run of each goes through the sweep's harness."""

from __future__ import annotations

import pytest

from benchmarks.copies_once import VARIANTS, variant_strategy
from benchmarks.sweep import Run, measure_run
from fl_agent.errors import ConfigError
from fl_agent.simulation.config import SimulationConfig
from fl_agent.simulation.offline import aggregator_strategy, federation


def test_the_variants_are_the_tasks_fairfl_with_copies_once_on_and_off():
    fed = federation(SimulationConfig(dataset="breast_cancer", seed=11, rounds=1))
    task = aggregator_strategy(fed)
    on, off = (variant_strategy(v, fed) for v in VARIANTS)
    assert task.copies_once and on == task
    assert not off.copies_once and off == type(task)(**{**vars(task), "copies_once": False})
    with pytest.raises(ConfigError, match="unknown variant"):
        variant_strategy("fedavg", fed)


def test_a_run_of_the_rule_before_goes_through_the_sweep():
    row = measure_run(Run("breast_cancer", "minmax", 0.1, 0.45, "fairfl-every-copy", 11, 1),
                      variant_strategy)
    assert row["rule"] == "fairfl-every-copy" and 0.0 <= row["accuracy"] <= 1.0
