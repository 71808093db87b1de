"""Robust aggregation and contribution scoring on flat parameter vectors.

``get_strategy(name, **config).aggregate(global_params, updates, num_samples, evaluate)``
returns an :class:`AggregationResult` (new global vector, accepted / rejected update
indices, per-update scores, reasons). Strategies: ``fairfl`` (the paper's method, see
:mod:`fl_agent.aggregation.fairfl`), ``fedavg``, ``median``, ``trimmed_mean``, ``krum``,
``multikrum``, ``fltrust``, ``flame``. Contribution scores and on-chain reward shares are in
:mod:`fl_agent.aggregation.scoring`.
"""

from __future__ import annotations

from fl_agent.aggregation.base import AggregationResult, Evaluate, Reason, Strategy
from fl_agent.aggregation.fairfl import FairFL, FairFLReport
from fl_agent.aggregation.scoring import (
    blend_with_samples,
    contribution_scores,
    leave_one_out,
    permutation_shapley_values,
    shapley_values,
    subset_value,
    to_reward_shares,
)
from fl_agent.aggregation.strategies import (
    STRATEGIES,
    FedAvg,
    Flame,
    FLTrust,
    Krum,
    Median,
    MultiKrum,
    TrimmedMean,
    get_strategy,
)

__all__ = [
    "STRATEGIES",
    "AggregationResult",
    "Evaluate",
    "FLTrust",
    "FairFL",
    "FairFLReport",
    "FedAvg",
    "Flame",
    "Krum",
    "Median",
    "MultiKrum",
    "Reason",
    "Strategy",
    "TrimmedMean",
    "blend_with_samples",
    "contribution_scores",
    "get_strategy",
    "leave_one_out",
    "permutation_shapley_values",
    "shapley_values",
    "subset_value",
    "to_reward_shares",
]
