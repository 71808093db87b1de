"""One round's decision, from the updates alone: the new model, who is accepted, who is paid.

The aggregator agent (:mod:`fl_agent.agents.aggregator`) and the offline harness
(:mod:`fl_agent.simulation.offline`) both call :func:`decide_round`, so what is measured
offline is what runs on chain.

**Nothing a participant says about itself enters.** ``submitUpdate`` carries a sample count
and a training time that the participant reports and nobody can check. Neither weights the
aggregate, the validation gate or the contribution scores, and neither is paid for: every
update the strategy receives counts once (uniform weights), and the round's budget is shared
in proportion to the contribution scores alone (:func:`fl_agent.aggregation.scoring.
to_reward_shares`). Until this rule, the aggregate was weighted by the claimed sample count
and half of the budget was paid by it, so a participant that only claimed 10^6 samples took
about half of every round's reward and dragged the model towards its own data
(``benchmarks/claims.py`` measures both rules side by side). What a participant can still
do, and what it gains, is in ``docs/fairness.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from fl_agent.aggregation.base import Evaluate, FloatArray, Strategy, UpdatesLike
from fl_agent.aggregation.scoring import contribution_scores, to_reward_shares


@dataclass(frozen=True)
class RoundDecision:
    """What the aggregator decides about one round's ``n`` updates (indices into them)."""

    params: FloatArray = field(repr=False)  # the new global model
    accepted: tuple[int, ...]
    reasons: Mapping[int, str]  # why each rejected update was rejected
    scores: FloatArray  # contribution score per update (0 when rejected)
    shares: tuple[int, ...]  # parts per million of the round's budget per update


def decide_round(strategy: Strategy, global_params: ArrayLike, updates: UpdatesLike, *,
                 gate: Evaluate | None, score: Callable[[FloatArray], float],
                 scoring: Literal["loo", "shapley"] = "shapley", permutations: int = 40,
                 round_number: int = 0) -> RoundDecision:
    """Aggregates ``updates`` with ``strategy`` (``gate``: its validation score, higher is
    better), scores the accepted ones with ``score`` (the task metric on validation) by
    ``scoring``, and shares the round's budget by those scores (ties rotate with
    ``round_number``, which also seeds the Shapley permutations)."""
    n = len(updates)
    weights = np.ones(n)  # each update counts once: see the module docstring
    result = strategy.aggregate(global_params, updates, weights, evaluate=gate)
    scores = np.zeros(n)
    shares: tuple[int, ...] = (0,) * n
    if result.accepted:
        scores = contribution_scores(strategy, global_params, updates, weights,
                                     result.accepted, score, method=scoring,
                                     num_permutations=permutations, seed=round_number)
        shares = tuple(to_reward_shares(scores, result.accepted, tie_break=round_number))
    return RoundDecision(np.asarray(result.params), tuple(int(i) for i in result.accepted),
                         MappingProxyType({int(i): str(why) for i, why in result.reasons.items()}),
                         scores, shares)


__all__ = ["RoundDecision", "decide_round"]
