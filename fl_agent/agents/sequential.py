"""Each sender's record for FairFL's sequential test, from the task's published evidence.

Under ``FairFL(sequential=True)`` (a DP task created since 2026-12-05, unless it set
``--rule-option sequential=false``) an update is also judged on its sender's earlier
rounds: the z-scores the rule measured for that sender's updates
(:func:`fl_agent.aggregation.gate.noise_evidence`), summed
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
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from fl_agent.agents.evidence import RoundEvidence
from fl_agent.chain.history import RoundView
from fl_agent.errors import FairFLError
from fl_agent.storage.base import NodeUnavailableError

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
    added up (``earlier``: :func:`earlier_evidence` of the round)."""
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


def readable(get: Callable[[str], bytes], cid: str,
             log: Callable[[str], None] = lambda message: None) -> RoundEvidence | None:
    """A round's evidence whose sequential figures can be read, or None (logged) when the
    store does not have it or it is malformed: such a round adds nothing to the senders'
    records, for the aggregator and for whoever checks it alike. A store that is down
    raises (:class:`~fl_agent.storage.base.NodeUnavailableError`): nobody is judged on a
    record that is only missing for now."""
    try:
        evidence = RoundEvidence.from_json(get(cid))
        scores_of(evidence)
    except NodeUnavailableError:
        raise
    except (FairFLError, ValueError) as err:
        log(f"[yellow]the evidence {cid} is left out of the senders' records:[/] {err}")
        return None
    return evidence


def earlier_evidence(rounds: Iterable[RoundView], round_number: int,
                     read: Callable[[str], RoundEvidence | None]) -> list[RoundEvidence]:
    """The evidence that makes the senders' records in ``round_number``: that of every
    earlier round that was finalized (a round closed short made no model; its z-scores do
    not count), as ``read`` gives it (:func:`readable`; None leaves the round out)."""
    out = []
    for view in rounds:
        if view.round < round_number and view.finalized and view.evidence_cid:
            evidence = read(view.evidence_cid)
            if evidence is not None:
                out.append(evidence)
    return out


class SequentialRecords:
    """The aggregator's reader of its task's earlier evidence for the sequential test:
    ``rounds`` gives the task's round views (:func:`fl_agent.chain.history.tasks`), ``get``
    the store's documents; each round's evidence is read once."""

    def __init__(self, rounds: Callable[[], Sequence[RoundView]], get: Callable[[str], bytes],
                 log: Callable[[str], None] = lambda message: None) -> None:
        self.rounds, self.get, self.log = rounds, get, log
        self._read: dict[str, RoundEvidence | None] = {}  # evidence CID -> what it gave

    def read(self, cid: str) -> RoundEvidence | None:
        """:func:`readable`, once per document (a store that is down is asked again)."""
        if cid not in self._read:
            self._read[cid] = readable(self.get, cid, self.log)
        return self._read[cid]

    def prior(self, round_number: int, senders: Sequence[str]) -> np.ndarray:
        """``Round.evidence`` for ``senders`` in ``round_number``."""
        return prior_rows(fold(earlier_evidence(self.rounds(), round_number, self.read)),
                          senders)


__all__ = ["Record", "SequentialRecords", "earlier_evidence", "fold", "prior_problems",
           "prior_rows", "readable", "scores_of"]
