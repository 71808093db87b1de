"""Rule R65's candidate: the sequential test judging a sender against the round's other
senders, not against 0 alone (docs/data/sequential_relative_rules_2026-12-07.md).

A DP task's FairFL turns an update away when its sender's record, ``T = (sum + z) /
sqrt(count + 1)`` over its rounds, is below ``-tolerance``
(:func:`fl_agent.aggregation.gate.sequential_out`), which assumes that an honest sender's
z-scores average at least 0. Rule R64 measured that from a start that is already good they
do not for every honest sender: the honest records' median fell from 6.47 to 0.87 and some
fell below -2 (``benchmarks.sequential_record``). The candidate turns an update away only
if its record is also an outlier among the round's: below ``median(T) - tolerance *
max(1, 1.4826 * MAD(T))`` over the round's scored updates. One standard deviation of the
null is the floor of the spread, so in a round of equal senders it asks what the test asks
today, shifted to their median. It can only turn fewer updates away than today's test.

Lives in the benchmarks, not in ``fl_agent``: no task uses it unless a rule adopts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fl_agent.aggregation import FairFL
from fl_agent.aggregation.base import FloatArray
from fl_agent.aggregation.gate import sequential_out, sequential_statistic

#: Scales a median absolute deviation to a normal distribution's standard deviation.
MAD_TO_SD = 1.4826


def relative_sequential_out(sums: FloatArray, counts: FloatArray, z: FloatArray,
                            tolerance: float) -> NDArray[np.bool_]:
    """Which updates to turn away: those :func:`sequential_out` turns away whose record is
    also below the round's median record by more than ``tolerance`` spreads (the records'
    ``MAD_TO_SD * MAD``, at least 1)."""
    statistic = sequential_statistic(sums, counts, z)
    absolute = sequential_out(sums, counts, z, tolerance)
    if statistic.size == 0:
        return absolute
    centre = float(np.median(statistic))
    spread = max(1.0, MAD_TO_SD * float(np.median(np.abs(statistic - centre))))
    return absolute & (statistic < centre - tolerance * spread)


@dataclass(frozen=True)
class RelativeSequentialFairFL(FairFL):
    """FairFL with :func:`relative_sequential_out` as step 5b's verdict."""

    def sequential_verdicts(self, sums: FloatArray, counts: FloatArray,
                            z: FloatArray) -> NDArray[np.bool_]:
        return relative_sequential_out(sums, counts, z, self.tolerance)


def relative(strategy: FairFL) -> RelativeSequentialFairFL:
    """``strategy`` with the candidate verdict, every option as it was."""
    from dataclasses import fields

    return RelativeSequentialFairFL(**{f.name: getattr(strategy, f.name)
                                       for f in fields(strategy) if f.init})


__all__ = ["MAD_TO_SD", "RelativeSequentialFairFL", "relative", "relative_sequential_out"]
