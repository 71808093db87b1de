"""One round's decision, from the updates: the new model, who is accepted, who is paid.

The aggregator agent (:mod:`fl_agent.agents.aggregator`) and the offline harness
(:mod:`fl_agent.simulation.offline`) both call :func:`decide_round`, so what is measured
offline is what runs on chain.

The rule: the strategy aggregates the updates weighted by the sample counts that the
participants report in ``submitUpdate``; the accepted updates are scored by their
contribution on validation (Shapley or leave-one-out, with the same weights); a
``base_share`` of the round's budget is paid by the reported sample counts and the rest by
the scores (:func:`fl_agent.aggregation.scoring.blend_with_samples`).

**Known weakness (issue 11):** nobody can check a reported sample count, so a participant
that inflates it buys weight in the aggregate and pay. ``benchmarks/claims.py`` measures
how much, and a candidate rule (uniform weights, pay by score alone) that removes the
gain but cost accuracy and blacklisted an honest client; see ``docs/fairness.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from fl_agent.aggregation.base import Evaluate, FloatArray, Strategy, UpdatesLike
from fl_agent.aggregation.scoring import (
    blend_with_samples,
    contribution_scores,
    to_reward_shares,
)


@dataclass(frozen=True)
class RoundDecision:
    """What the aggregator decides about one round's ``n`` updates (indices into them)."""

    params: FloatArray = field(repr=False)  # the new global model
    accepted: tuple[int, ...]
    reasons: Mapping[int, str]  # why each rejected update was rejected
    scores: FloatArray  # contribution score per update (0 when rejected)
    shares: tuple[int, ...]  # parts per million of the round's budget per update


def decide_round(strategy: Strategy, global_params: ArrayLike, updates: UpdatesLike,
                 num_samples: ArrayLike, *, gate: Evaluate | None,
                 score: Callable[[FloatArray], float],
                 scoring: Literal["loo", "shapley"] = "shapley", permutations: int = 40,
                 base_share: float = 0.5, round_number: int = 0) -> RoundDecision:
    """Aggregates ``updates`` with ``strategy`` weighted by ``num_samples`` (``gate``: its
    validation score, higher is better), scores the accepted ones with ``score`` (the task
    metric on validation) by ``scoring``, and shares the round's budget: ``base_share`` by
    sample count, the rest by score (ties rotate with ``round_number``, which also seeds
    the Shapley permutations)."""
    n = len(updates)
    weights = np.asarray(num_samples, dtype=np.float64)
    result = strategy.aggregate(global_params, updates, weights, evaluate=gate)
    scores = np.zeros(n)
    shares: tuple[int, ...] = (0,) * n
    if result.accepted:
        scores = contribution_scores(strategy, global_params, updates, weights,
                                     result.accepted, score, method=scoring,
                                     num_permutations=permutations, seed=round_number)
        shares = tuple(to_reward_shares(
            blend_with_samples(scores, weights, result.accepted, base_share),
            result.accepted, tie_break=round_number))
    return RoundDecision(np.asarray(result.params), tuple(int(i) for i in result.accepted),
                         MappingProxyType({int(i): str(why) for i, why in result.reasons.items()}),
                         scores, shares)


__all__ = ["RoundDecision", "decide_round"]
