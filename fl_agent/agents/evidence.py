"""The evidence of a round: why each update was accepted or rejected, in public.

The aggregator stores this JSON document in IPFS and names it in ``finalizeRound``
(``evidenceCid``), with one reason code per rejected sender in the same transaction, so
anyone can see why a participant lost reputation and what each update earned. It holds
figures only (scores, shares, the new model's validation score, and per update its cosine
to the new model's change, its relative length and its validation score alone), never
weights.

It also names everything needed to run the round's decision again (version 3): what the
rule measured (``rule_figures``: under FairFL each update's norm and trigger excess, the
pairwise similarities, the clusters and the gate's steps, from which anyone decides its
screens again), the rule and its every parameter (``rule``), the task document (on chain)
for the scoring and sharing settings, each update's CID, and the SHA-256 commitment to the
aggregator's validation data (``validation_sha256``) that the round's workload made when
the round opened, before any update existed. The validation data stays the aggregator's,
and the updates are sealed to it; whoever holds both (the aggregator, or whoever it shows
them to on an appeal) reruns the round with ``fl-agent evidence check --validation``, and
the commitment shows that the data shown is the data the rule used
(:mod:`fl_agent.agents.audit`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fl_agent.aggregation.base import Reason
from fl_agent.chain.records import RejectReason
from fl_agent.documents import Document

#: Version 2 added each update's figures (``cosine``, ``norm_ratio``, ``alone``), version 3
#: the rule's parameters and the validation commitment, version 4 what the rule measured
#: (``rule_figures``), version 5 participant-level DP's record (``dp_fedavg``); a reader
#: takes every version up to its own, and a record of an older one lacks what came later
#: (a reader older than version 5 refuses version 5: documents forbid unknown fields).
FORMAT = "fairfl-round-evidence/5"

#: A sent update that could not be fetched, opened (not sealed to the aggregator, copied
#: from another sender) or decoded as the task's weights.
INVALID_UPDATE = "invalid_update"

#: Each rejection reason's on-chain code (``RoundResult.reasons``, ITaskLedger).
REASON_CODES: dict[str, RejectReason] = {
    INVALID_UPDATE: RejectReason.INVALID_UPDATE,
    **{str(reason): RejectReason[reason.name] for reason in Reason},
}


def reason_code(reason: str | None) -> int:
    """The on-chain code of a rejection reason (``"invalid_update: ..."`` counts as
    :data:`INVALID_UPDATE`)."""
    if reason is None:
        return int(RejectReason.OTHER)
    return int(REASON_CODES.get(reason.split(":", 1)[0].strip(), RejectReason.OTHER))


def validation_digest(X: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 (hex) of a validation set as the aggregator was given it (features as
    float64, labels as int64, with their shapes): the commitment a round's evidence makes
    to the data its rule used, checked when the data is shown later."""
    features = np.ascontiguousarray(X, dtype="<f8")
    labels = np.ascontiguousarray(y, dtype="<i8")
    header = json.dumps({"X": list(features.shape), "y": list(labels.shape)},
                        separators=(",", ":")).encode()
    digest = hashlib.sha256(b"fairfl-validation/1\n" + header + b"\n")
    digest.update(features.tobytes())
    digest.update(labels.tobytes())
    return digest.hexdigest()


def rule_parameters(strategy: Any) -> dict[str, Any]:
    """The rule as the round ran it: its name and every parameter that is a plain value
    (a callable, such as FLTrust's server update trained on the validation data, is named
    by the validation commitment instead)."""
    plain = (bool, int, float, str, type(None))
    options: dict[str, Any] = {}
    if dataclasses.is_dataclass(strategy):
        for spec in dataclasses.fields(strategy):
            value = getattr(strategy, spec.name)
            if isinstance(value, plain):
                options[spec.name] = value
            elif isinstance(value, tuple | list) and len(value) <= 64 \
                    and all(isinstance(v, plain) for v in value):
                options[spec.name] = list(value)
    return {"name": str(getattr(strategy, "name", type(strategy).__name__)),
            "options": options}


#: Options a rule gained after evidence began to record its parameters, with the value every
#: round before ran at: a record without one names the same rule as one with that value
#: (FairFL's ``sequential`` 2026-12-05, ``min_tolerance``, ``copies_once``, ``held_back``
#: and ``noise_rounds`` 2026-12-06).
LATER_OPTIONS: dict[str, dict[str, Any]] = {
    "fairfl": {"sequential": False, "min_tolerance": 0.0, "copies_once": False,
               "held_back": False, "noise_rounds": 1}}


def same_rule(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether a round's recorded rule (:func:`rule_parameters`) is ``current``, an option
    of :data:`LATER_OPTIONS` missing from either being at its old value."""
    def filled(rule: Mapping[str, Any]) -> dict[str, Any]:
        later = LATER_OPTIONS.get(str(rule.get("name")), {})
        return {**rule, "options": {**later, **dict(rule.get("options") or {})}}

    return filled(recorded) == filled(current)


#: The entries of a rule's figures that hold update indices (FairFL's; see
#: :func:`fl_agent.agents.screen_replay.replay_screens`).
_INDEX_LISTS = ("indices", "candidates", "pool", "voters", "dropped", "rescued")


def renumbered(figures: Mapping[str, Any], positions: Sequence[int]) -> dict[str, Any]:
    """A rule's figures (``AggregationResult.figures``, indices into the updates it was
    given) with every index ``j`` replaced by ``positions[j]``: the position of that update
    among the round's verdicts."""
    def at(indices: Sequence[int]) -> list[int]:
        return [int(positions[j]) for j in indices]

    out = dict(figures)
    for key in _INDEX_LISTS:
        if key in out:
            out[key] = at(out[key])
    if "trigger" in out:
        out["trigger"] = {**out["trigger"], "indices": at(out["trigger"]["indices"])}
    if "gate" in out:
        out["gate"] = [{**step, "members": at(step["members"]), "kept": at(step["kept"])}
                       for step in out["gate"]]
    for key in ("sequential", "held_back"):  # rows [index, ...]
        if key in out:
            out[key] = [[int(positions[int(row[0])]), *row[1:]] for row in out[key]]
    return out


def reason_name(code: int) -> str:
    """``9`` -> ``"validation"``: the name of an on-chain reason code."""
    try:
        return RejectReason(code).name.lower()
    except ValueError:
        return "other"


class VerdictRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    participant: str
    update: str
    samples: int  # as the participant reported it: unchecked, unused by the decision
    training_millis: int
    accepted: bool
    reason: str | None = None
    code: int = 0
    score: float = 0.0
    #: The update's share of the round's reward budget, in parts per million.
    share_ppm: int = 0
    #: Figures about the update whatever the rule (``fl_agent.aggregation.rounds.
    #: update_figures``), absent for an update that could not be read: the cosine of its
    #: delta to the new model's delta, its length over the round's median, and the task
    #: metric of the global model plus this update alone on the aggregator's validation data.
    cosine: float | None = None
    norm_ratio: float | None = None
    alone: float | None = None


class RoundEvidence(Document):
    """What the aggregator decided in one round, and on what figures."""

    KIND = "FairFL round evidence document"

    format: str = Field(FORMAT, pattern=r"^fairfl-round-evidence/[1-5]$")
    task: int
    round: int
    global_model: str
    #: Empty when the round was closed short of its quorum (``closeRoundRejecting``): the
    #: verdicts stand, but no model was made and the global model stays.
    new_model: str
    strategy: str
    metric: str
    #: SHA-256 (hex) of the new model's plaintext, as in the round's ``modelHash``.
    new_model_sha256: str = ""
    #: The task metric of the new model on the aggregator's validation split.
    validation: float
    verdicts: tuple[VerdictRecord, ...]
    aggregation_millis: int = 0
    #: The keyring that opens ``new_model`` (its readers: see fl_agent.agents.access).
    keyring: str | None = None
    key_epoch: int = 0
    #: The rule and its parameters (:func:`rule_parameters`); empty before version 3.
    rule: dict[str, Any] = Field(default_factory=dict)
    #: :func:`validation_digest` of the aggregator's validation data; empty before version 3.
    validation_sha256: str = ""
    #: What the rule measured to decide, indices being positions in ``verdicts``
    #: (:func:`renumbered`; FairFL's norms, trigger excess, similarities, clusters and gate
    #: steps, which :func:`fl_agent.agents.screen_replay.replay_screens` decides again); empty for
    #: other rules and before version 4.
    rule_figures: dict[str, Any] = Field(default_factory=dict)
    #: Participant-level DP (a ``dp`` plan at level ``participant``): what the round's
    #: DP-FedAvg did and the ε the task has spent so far
    #: (:class:`fl_agent.privacy.central.DPFedAvgRecord`, checked by its
    #: ``record_problems``); None in other tasks, in a round closed short of its quorum and
    #: before version 5.
    dp_fedavg: dict[str, Any] | None = None
