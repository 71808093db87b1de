"""Each sender's record for FairFL's sequential test, from the task's published evidence.

Under ``FairFL(sequential=True)`` (a DP task created with ``--rule-option sequential=true``)
an update is also judged on its sender's earlier rounds: the z-scores the rule measured for
that sender's updates (:func:`fl_agent.aggregation.gate.noise_evidence`), summed
(:func:`fl_agent.aggregation.gate.sequential_out`). The record is public: each round's
evidence document lists, for every update the test scored, its z-score and the sum and
count it was judged with (``rule_figures["sequential"]``: rows ``[index, z, sum, count]``,
the index into the round's verdicts). So the aggregator reads a sender's record from the
evidence of the task's earlier rounds rather than from its own memory (a restarted or
replaced aggregator reads the same), and anyone can check that the sums a round used are
the earlier rounds' z-scores added up (:func:`prior_problems`).

Hand-written: the folding is FairFL's own bookkeeping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from fl_agent.agents.evidence import RoundEvidence

Record = dict[str, tuple[float, int]]
"""A sender (lower-case address) -> the sum of its z-scores and how many there are."""


def scores_of(evidence: RoundEvidence) -> dict[str, float]:
    """The z-scores one round's evidence records, by sender (lower-case address)."""
    rows = evidence.rule_figures.get("sequential") or []
    out: dict[str, float] = {}
    for row in rows:
        index, z = int(row[0]), float(row[1])
        if not 0 <= index < len(evidence.verdicts) or not math.isfinite(z):
            raise ValueError(f"the sequential figures name update {index} with z-score {z}; "
                             f"the round has {len(evidence.verdicts)} verdicts")
        out[evidence.verdicts[index].participant.lower()] = z
    return out


def fold(rounds: Iterable[RoundEvidence]) -> Record:
    """The senders' records after ``rounds`` (each sender's z-scores summed, and counted)."""
    record: Record = {}
    for evidence in rounds:
        for sender, z in scores_of(evidence).items():
            total, count = record.get(sender, (0.0, 0))
            record[sender] = (total + z, count + 1)
    return record


def prior_rows(record: Record, senders: Sequence[str]) -> np.ndarray:
    """``Round.evidence`` for updates from ``senders``: one (sum, count) row each."""
    return np.array([record.get(str(s).lower(), (0.0, 0)) for s in senders],
                    dtype=np.float64).reshape(len(senders), 2)


def prior_problems(evidence: RoundEvidence, earlier: Sequence[RoundEvidence]) -> list[str]:
    """Where the sums a round's sequential test used are not its earlier rounds' z-scores
    added up (``earlier``: the evidence of every earlier round of the task that has some)."""
    rows = evidence.rule_figures.get("sequential") or []
    record = fold(earlier)
    problems = []
    for row in rows:
        sender = evidence.verdicts[int(row[0])].participant
        total, count = record.get(sender.lower(), (0.0, 0))
        used_total, used_count = float(row[2]), int(row[3])
        if used_count != count or not math.isclose(used_total, total, rel_tol=1e-9,
                                                   abs_tol=1e-9):
            problems.append(f"{sender}: the sequential test used a sum of {used_total} over "
                            f"{used_count} rounds; the earlier rounds' evidence gives "
                            f"{total} over {count}")
    return problems


class SequentialRecords:
    """The aggregator's reader of its task's earlier evidence for the sequential test (one
    evidence document per earlier round, read once)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self._rounds: dict[int, RoundEvidence | None] = {}

    def prior(self, round_number: int, senders: Sequence[str]) -> np.ndarray | None:
        """``Round.evidence`` for ``senders`` in ``round_number``, or None when the task's
        rule has no sequential test."""
        strategy = self.agent.strategy
        if not (getattr(strategy, "sequential", False)
                and getattr(strategy, "noise_control", False)):
            return None
        from fl_agent.chain.history import tasks

        missing = [r for r in range(1, round_number) if r not in self._rounds]
        if missing:
            views = tasks(self.agent.fairfl.task_events(self.agent.task_id))
            task = views[self.agent.task_id]
            for view in task.rounds[:round_number - 1]:
                if view.round in self._rounds:
                    continue
                self._rounds[view.round] = None if not view.evidence_cid else \
                    RoundEvidence.from_json(self.agent.store.get(view.evidence_cid))
        earlier = [self._rounds[r] for r in range(1, round_number) if self._rounds.get(r)]
        return prior_rows(fold(e for e in earlier if e is not None), senders)


__all__ = ["Record", "SequentialRecords", "fold", "prior_problems", "prior_rows", "scores_of"]
