"""FairFL's trigger screen (step 1b of :mod:`fl_agent.aggregation.fairfl`).

The trigger screen is not in the paper. It runs only when ``input_layer`` says where the
dense weight that reads the raw input features sits in the vector (see
:func:`fl_agent.learning.input_layer`: an MLP or a logistic regression has one, a CNN
none). The cosine steps cannot see a backdoor: in a non-IID federation its extra
direction stays inside the benign spread (see the limits at the end). What gives it away is
*where* the change lands. A trigger stamps a few input features with values the data
hardly ever holds (the simulation's 2x2 corner patch is 15 standard deviations out on a
pixel that is nearly always blank), and the gradient of the input layer's column ``j`` is
proportional to feature ``j``'s value, so a model that learns the trigger piles its
input-layer change on those few columns. With ``W_i`` the update's input-layer change,
``share_ij = ||column j of W_i||^2 / ||W_i||^2`` (:func:`input_feature_shares`); the
statistic is the largest excess of ``share_ij`` over the round's median share of feature
``j`` (:func:`trigger_excess`), and an update whose excess reaches ``trigger_share`` is
rejected (``trigger``). The median is taken over the updates that passed step 1 (a
minority of attackers cannot move it) and needs at least ``min_samples`` of them. The
statistic ignores an update's length and the order of the updates. In the digits runs
(seeds 1-5, 6 of 20 clients with the backdoor, blacklisting on) the attackers' excess was
0.23-0.36 in every round they submitted in, and with the screen on no benign update went
above 0.19 in any round, with or without an attack (most stay below 0.12);
``trigger_share=0.2`` sits in that gap, which is narrow, so treat it as a setting to
check on a new kind of data.
Sparse updates (a task that prunes, :mod:`fl_agent.privacy.sparse`) need more than one
round: error feedback spreads a participant's step over its next rounds, the largest
entries first, so an attacker's trigger columns go out in one round and its next update
carries the rest of its step, with a smaller pile. ``trigger_rounds`` also screens the
sum of what each sender sent in its latest rounds (the round's
:attr:`~fl_agent.aggregation.base.Round.earlier`, which the caller keeps; the
aggregator agent keeps what it decoded, and reads what it did not back from the chain
and the store), and an update's excess is
the larger of its own and its sum's: no earlier round can hide a pile in this one. The
sum holds earlier updates whether or not they were accepted: it stands for the sender's
step over those rounds, as one dense update would show it, so an attacker is turned away
every round as with dense updates. The aggregator uses 2 for
a task that prunes (:data:`fl_agent.agents.task_rule.PRUNE_TRIGGER_ROUNDS`, chosen on
tuning seeds 1-3; docs/privacy-sparse.md) and 1, the update alone, otherwise.
Limits: a trigger made of values the features naturally take, or spread over many
features, moves the columns the way benign data does and is not seen; fewer poisoned
examples make a weaker pile (figures in the README); a CNN is not screened.

Split from :mod:`fl_agent.aggregation.fairfl`, whose module docstring explains the other
steps. Hand-written (plain numpy): no library measures where an update's input-layer
change lands.
"""

from __future__ import annotations

import numpy as np

from fl_agent.aggregation.base import FloatArray


def input_feature_shares(deltas: FloatArray,
                         input_layer: tuple[int, int, int]) -> FloatArray:
    """Each delta's input-layer change split by input feature: with ``W_i`` its
    ``units x features`` slice (``input_layer = (offset, units, features)``), the share of
    ``||W_i||^2`` in each column (rows sum to 1; an all-zero slice gives zeros)."""
    offset, units, features = input_layer
    block = deltas[:, offset:offset + units * features].reshape(-1, units, features)
    energy = np.square(block, dtype=np.float64).sum(axis=1)
    total = energy.sum(axis=1, keepdims=True)
    return np.divide(energy, total, out=np.zeros_like(energy), where=total > 0)


def trigger_excess(deltas: FloatArray, input_layer: tuple[int, int, int]) -> FloatArray:
    """Step 1b's statistic: for each delta, the largest excess of an input feature's share
    (:func:`input_feature_shares`) over that feature's median share in the round."""
    shares = input_feature_shares(deltas, input_layer)
    if shares.shape[0] == 0:
        return np.zeros(0)
    return (shares - np.median(shares, axis=0)).max(axis=1)


__all__ = ["input_feature_shares", "trigger_excess"]
