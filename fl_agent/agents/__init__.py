"""The agents: a participant trains and submits, an aggregator aggregates and pays.

They wire the pure computation of :mod:`fl_agent.learning` and :mod:`fl_agent.aggregation`
to the chain (:mod:`fl_agent.chain`) and the content store (:mod:`fl_agent.storage`).
``fl-agent train`` and ``fl-agent aggregate`` run one each; ``fl-agent simulate`` runs many.
"""

from fl_agent.agents.aggregator import AggregatorAgent
from fl_agent.agents.participant import (
    ParticipantAgent,
    Skipped,
    Submission,
    load_task_document,
)
from fl_agent.agents.verdicts import RoundOutcome, Verdict

__all__ = ["AggregatorAgent", "ParticipantAgent", "RoundOutcome", "Skipped", "Submission",
           "Verdict", "load_task_document"]
