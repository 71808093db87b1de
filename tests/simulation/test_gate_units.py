"""Issue 11, item 5, on real rounds: FairFL's gate gives the same verdicts, within noise,
whether it reads minus the loss, the expected accuracy or the soft macro-F1 of each
validation example (``python -m benchmarks.gate_units`` measures it on the evaluation
seeds)."""

from __future__ import annotations

from benchmarks.gate_units import HARD, same_rounds
from fl_agent.simulation.config import SimulationConfig


def test_the_gate_gives_the_same_verdicts_in_any_unit_on_real_rounds():
    """Six rounds of digits, 10 clients, 3 label flippers (seed 21: used for no tuning and
    no published figure). Every round is decided again on the same updates with each score,
    and with the loss read on ten bootstrap resamples of the validation split: how much the
    verdicts move for the luck of the draw alone. Measured: 53 verdicts reach the gate; the
    expected accuracy and the soft macro-F1 change one each, the resamples 0-3. The control,
    hard 0/1 accuracy (which moves in steps of one validation example and cannot resolve
    one client's share of a step), changes 6: the comparison tells a gate that reads
    something else."""
    row = same_rounds(SimulationConfig(clients=10, rounds=6, attack="label_flip", seed=21))
    noise = max(row["noise"])
    assert row["verdicts"] >= 40
    assert 0 < noise <= 0.1 * row["verdicts"], row
    assert row["differ"]["accuracy"] <= noise, row
    assert row["differ"]["f1_macro"] <= noise, row
    assert row["differ"][HARD] > noise, row
