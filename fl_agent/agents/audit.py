"""Checking a round's evidence: against the chain (anyone), and by running the round again
(whoever holds the aggregator's validation data and its key).

A participant that lost reputation, governance resolving its appeal, or a buyer weighing a
model can ask three questions of a round's evidence document (:mod:`fl_agent.agents.evidence`):

1. **Is it the record the chain acted on?** :func:`check_against_chain` needs nothing
   secret: the round's events name the evidence's CID, and the document must list the
   round's submissions (sender, update CID, claimed samples, in chain order; a submission
   mined after the aggregator read the round is neither judged nor paid, and is listed by
   :func:`unjudged`), the same contributors with the same shares, the same rejected senders
   with the same reason codes, and the new model's CID and hash that ``finalizeRound``
   recorded. A round closed short must have fewer accepted updates than the quorum. The
   evidence's validation commitment must be the one the round's workload made when the
   round opened, before any update was seen, and :func:`changed_commitments` names the
   rounds where the same aggregator's commitment changed.
2. **Do the verdicts follow from the figures the rule recorded?** :func:`replay_screens`
   (anyone, under FairFL) decides the norm screen, the trigger screen, the chance test, the
   DBSCAN radius and clusters and the similarity test again from the evidence's figures and
   the task's rule, and the gate's verdicts from its recorded steps. The figures themselves
   are the aggregator's measurements: only the rerun checks them.
3. **Does the rule, run again on the same inputs, decide the same?** :func:`rerun_round`
   runs the aggregator's own decision (:meth:`AggregatorAgent.judge`) on the updates the
   evidence judged, with the validation data shown, and :func:`compare_rerun` lists every
   difference: the validation data against the commitment, the rule and its parameters,
   each verdict, reason code, reward share and score, each update's figures and the new
   model's hash. The updates are sealed to the aggregator and the validation data is its
   own, so the rerun needs the aggregator's account; on an appeal the aggregator runs it in
   front of whoever judges, or hands both over, and the commitment binds the data it shows
   to what it committed to before the round's updates existed.

Limits:

- A homomorphic round (its rule ran on ciphertexts with the key holder) is checked against
  the chain only.
- Under participant-level DP the released model carries fresh noise: the rerun compares
  the verdicts, shares, scores and the figures that do not depend on the model (length,
  score alone), not the model's hash or the cosines to it.
- A rule option that draws unseeded noise (FLAME's ``noise_lambda`` without ``seed``)
  makes the model differ on every run.
- Only the aggregator that opened a round can rerun it (the updates are sealed to its key,
  and ``AggregatorAgent`` runs only as the task's current aggregator): after a replacement
  the old rounds can be checked against the chain only.
- A held-back update (FairFL's ``held_back``, registry code 13: not counted towards a
  ban) is replayed from its recorded slack, which must be what the recorded similarities
  give, and its recorded margin, which only the rerun checks: until then an aggregator
  could hold back a colluder whose harm was beyond the tolerance. (It could spare one a
  ban before as well, by judging its update with evidence that leaves it out:
  :func:`unjudged` lists such a submission, as it lists one mined too late.)
- An update rejected as out of reach may be reachable at the rerun (its sender provided it
  late): that shows as a difference, which the rejection's own message explains.
- The rerun is exact on the same software and machine. Elsewhere the floating-point
  arithmetic may round differently: scores and figures are compared to a relative 1e-6 and
  shares to 2 ppm, but the model's hash is bitwise, so a hash difference with no other
  difference is likely rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fl_agent.agents.evidence import RoundEvidence, reason_code, rule_parameters, same_rule
from fl_agent.agents.screen_replay import (  # replay_screens: question 2, re-exported
    RTOL,
    WITHOUT_FIGURES,
    close_enough,
    replay_screens,
)
from fl_agent.chain.history import RoundView, Submission
from fl_agent.errors import ConfigError
from fl_agent.learning.workload import Workload

#: Reward shares (parts per million) a rerun may differ by, for the same reason.
SHARE_SLACK_PPM = 2


def _lower(address: str) -> str:
    return str(address).lower()


def _key(participant: str, update: str, samples: int) -> tuple[str, str, int]:
    return _lower(participant), update, int(samples)


def judged(evidence: RoundEvidence, view: RoundView) -> list[Submission] | None:
    """The submissions the evidence's verdicts stand for, matched in chain order; None if
    some verdict is not one of the round's submissions (or is out of order)."""
    remaining = iter(view.submissions)
    matched = []
    for v in evidence.verdicts:
        key = _key(v.participant, v.update, v.samples)
        found = next((s for s in remaining
                      if _key(s.participant, s.update_cid, s.samples) == key), None)
        if found is None:
            return None
        matched.append(found)
    return matched


def unjudged(evidence: RoundEvidence, view: RoundView) -> list[Submission]:
    """The round's submissions that its evidence does not judge: mined after the aggregator
    read the round (neither paid nor rejected)."""
    matched = judged(evidence, view) or []
    return [s for s in view.submissions if not any(s is m for m in matched)]


def check_against_chain(evidence: RoundEvidence, view: RoundView, quorum: int,
                        workload: Workload | None = None) -> list[str]:
    """What in ``evidence`` disagrees with the chain's record of its round (``view``, from
    :func:`fl_agent.chain.history.tasks`; ``quorum``: the task's ``minParticipants``;
    ``workload``: the round's workload document, whose validation commitment the evidence
    must repeat); an empty list: nothing."""
    problems: list[str] = []
    if (evidence.task, evidence.round) != (view.task_id, view.round):
        problems.append(f"the evidence is of task {evidence.task} round {evidence.round}, "
                        f"not task {view.task_id} round {view.round}")
    if evidence.global_model != view.global_model_cid:
        problems.append(f"global model {evidence.global_model}, but the round started on "
                        f"{view.global_model_cid}")
    if judged(evidence, view) is None:
        problems.append(f"the evidence's {len(evidence.verdicts)} updates are not among the "
                        f"round's {len(view.submissions)} submissions (sender, update CID, "
                        "samples, in chain order)")
    elif len({_lower(v.participant) for v in evidence.verdicts}) != len(evidence.verdicts):
        problems.append("the evidence judges a sender twice")
    if workload is not None and workload.validation_sha256 is not None \
            and evidence.validation_sha256 != workload.validation_sha256:
        problems.append(f"the evidence's validation commitment "
                        f"{evidence.validation_sha256 or '(none)'} is not the one the round "
                        f"opened with, {workload.validation_sha256}")
    for v in evidence.verdicts:
        if not v.accepted and v.code != reason_code(v.reason):
            problems.append(f"{v.participant}: reason {v.reason!r} has code "
                            f"{reason_code(v.reason)}, the evidence says {v.code}")
    rejected = [(_lower(v.participant), v.code) for v in evidence.verdicts if not v.accepted]
    on_chain = [(_lower(a), int(c)) for a, c in zip(view.rejected, view.reasons, strict=False)]
    if rejected != on_chain:
        problems.append(f"rejections (sender, reason code) {rejected} in the evidence, "
                        f"{on_chain} on chain")
    accepted = [(_lower(v.participant), v.share_ppm) for v in evidence.verdicts if v.accepted]
    if view.finalized:
        credited = [(_lower(a), int(s)) for a, s in zip(view.contributors, view.scores_ppm,
                                                         strict=False)]
        if accepted != credited:
            problems.append(f"contributors (sender, share ppm) {accepted} in the evidence, "
                            f"{credited} on chain")
        if evidence.new_model != view.new_model_cid:
            problems.append(f"new model {evidence.new_model or '(none)'}, but the round was "
                            f"finalized with {view.new_model_cid}")
        if "0x" + evidence.new_model_sha256 != view.model_hash:
            problems.append(f"new model hash 0x{evidence.new_model_sha256}, "
                            f"{view.model_hash} on chain")
    elif view.closed_block is not None:
        if evidence.new_model:
            problems.append(f"the round was closed without a model, but the evidence names "
                            f"{evidence.new_model}")
        if any(share for _, share in accepted):
            problems.append("the round was closed without rewards, but the evidence gives "
                            "shares")
        if len(accepted) >= quorum:
            problems.append(f"the round was closed without a model, but the evidence accepts "
                            f"{len(accepted)} updates, which make the quorum of {quorum}: "
                            "it could have been finalized")
    else:
        problems.append("the round is still open: it has no evidence on chain yet")
    return problems


def changed_commitments(workloads: Sequence[Workload]) -> list[str]:
    """The rounds (workload documents in round order) where an aggregator's validation
    commitment differs from the one it opened its previous round with: data chosen anew
    during the task, which only the aggregator can explain."""
    notes, last = [], {}
    for workload in workloads:
        key = workload.aggregator_key
        if workload.validation_sha256 is None or key is None:
            continue
        before = last.get(key)
        if before is not None and before[1] != workload.validation_sha256:
            notes.append(f"round {workload.round}: the aggregator's validation commitment "
                         f"changed since round {before[0]}")
        last[key] = (workload.round, workload.validation_sha256)
    return notes


@dataclass(frozen=True)
class Rerun:
    """A round decided again (:func:`rerun_round`): each verdict as the evidence would
    record it, and what the model check needs."""

    validation_sha256: str
    verdicts: tuple[dict[str, Any], ...]  # VerdictRecord fields, as publish_evidence fills them
    model_sha256: str | None  # None: not comparable (participant-level DP, or no model)
    validation: float | None  # the released model's metric; None: not comparable
    cosines: bool  # whether the cosines to the new model are comparable (no fresh noise)
    rule: dict[str, Any]
    rule_figures: dict[str, Any] = field(default_factory=dict)  # what the rule measured


def compare_rerun(evidence: RoundEvidence, rerun: Rerun) -> list[str]:
    """Every difference between the evidence and the rerun; an empty list: the rule, run
    again on the data shown, decided what the evidence records."""
    problems: list[str] = []
    if not evidence.validation_sha256:
        problems.append(f"the evidence ({evidence.format}) has no validation commitment: "
                        "the data shown cannot be tied to the round")
    elif evidence.validation_sha256 != rerun.validation_sha256:
        problems.append("the validation data shown is not what the round committed to "
                        f"(sha256 {rerun.validation_sha256}, committed "
                        f"{evidence.validation_sha256})")
    if evidence.rule and not same_rule(evidence.rule, rerun.rule):
        problems.append(f"the evidence names the rule {evidence.rule}, the task's is "
                        f"{rerun.rule}")
    if len(evidence.verdicts) != len(rerun.verdicts):
        return [*problems, f"{len(rerun.verdicts)} updates rerun, {len(evidence.verdicts)} "
                           "in the evidence"]
    for record, again in zip(evidence.verdicts, rerun.verdicts, strict=True):
        who = record.participant
        if _lower(record.participant) != _lower(again["participant"]):
            problems.append(f"update order differs at {who}")
            continue
        if record.accepted != again["accepted"]:
            problems.append(f"{who}: {'accepted' if record.accepted else 'rejected'} in the "
                            f"evidence, {'accepted' if again['accepted'] else 'rejected'} "
                            f"({again['reason']}) on rerun")
            continue
        if record.code != again["code"]:
            problems.append(f"{who}: reason {record.reason!r} in the evidence, "
                            f"{again['reason']!r} on rerun")
        if abs(record.share_ppm - again["share_ppm"]) > SHARE_SLACK_PPM:
            problems.append(f"{who}: share {record.share_ppm} ppm in the evidence, "
                            f"{again['share_ppm']} on rerun")
        names = ["score"]
        if evidence.format != "fairfl-round-evidence/1":  # version 1 has no figures
            names += ["norm_ratio", "alone", *(["cosine"] if rerun.cosines else [])]
        for name in names:
            if not close_enough(getattr(record, name), again.get(name)):
                problems.append(f"{who}: {name} {getattr(record, name)} in the evidence, "
                                f"{again.get(name)} on rerun")
    if evidence.rule_figures or evidence.format not in WITHOUT_FIGURES:
        differ = sorted(k for k in {*evidence.rule_figures, *rerun.rule_figures}
                        if not _same(evidence.rule_figures.get(k), rerun.rule_figures.get(k)))
        if differ:
            problems.append(f"the rule's figures {differ} on rerun differ from the "
                            "evidence's")
    if rerun.model_sha256 is not None and rerun.model_sha256 != evidence.new_model_sha256:
        problems.append(f"the new model's hash on rerun is {rerun.model_sha256}, the evidence "
                        f"says {evidence.new_model_sha256}")
    if rerun.validation is not None and not close_enough(evidence.validation, rerun.validation):
        problems.append(f"the new model's validation {evidence.metric} is {rerun.validation} "
                        f"on rerun, {evidence.validation} in the evidence")
    return problems


def _same(a: Any, b: Any) -> bool:
    """Equal JSON values, floats to :data:`RTOL`."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and close_enough(a, b)
    return a == b


def rerun_round(agent: Any, evidence: RoundEvidence) -> Rerun:
    """Runs the round of ``evidence`` again with ``agent`` (an
    :class:`~fl_agent.agents.aggregator.AggregatorAgent` holding the task's aggregator key
    and the validation data shown): the same fetch, checks and rule as when it was decided,
    with nothing stored and no transaction."""
    from fl_agent.crypto.sealing import plaintext_hash
    from fl_agent.learning.weights import encode_weights

    if agent.he is not None:
        raise ConfigError("this task aggregates ciphertexts with its key holder: its rounds "
                          "cannot be rerun from the updates; check them against the chain "
                          "(without --validation)")
    workload = Workload.from_json(agent.store.get(str(
        agent._round_started(evidence.round).workloadCid)))
    if workload.aggregator_key not in (None, agent.keys.public):
        raise ConfigError(f"round {evidence.round} was opened by another aggregator: its "
                          "updates are sealed to that aggregator's key, so only it can rerun "
                          "the round; check it against the chain (without --validation)")
    judgement = agent.judge(evidence.round, only={(_lower(v.participant), v.update)
                                                  for v in evidence.verdicts})
    released = bool(evidence.new_model)
    privacy = agent.document.privacy
    noisy = privacy is not None and privacy.dp is not None and privacy.dp.level == "participant"
    params = judgement.params
    verdicts = agent.verdicts(judgement, params)
    higher = agent.metric.higher_is_better
    records = tuple({
        "participant": v.participant, "accepted": v.accepted, "reason": v.reason,
        "code": 0 if v.accepted else reason_code(v.reason), "score": v.score,
        "share_ppm": v.share_ppm if released else 0,
        **agent._figures(v.figures, released=released)} for v in verdicts)
    value = agent.score(params if released else judgement.global_vector)
    return Rerun(
        validation_sha256=agent.validation_sha256, verdicts=records,
        model_sha256=plaintext_hash(encode_weights(agent.document.model, params)).hex()
        if released and not noisy else None,
        validation=None if released and noisy else (value if higher else -value),
        cosines=not (released and noisy), rule=rule_parameters(agent.strategy),
        rule_figures=judgement.figures)


def round_of(views: dict[int, Any], task_id: int, round_number: int) -> RoundView:
    """Round ``round_number`` of task ``task_id`` among ``views``
    (:func:`fl_agent.chain.history.tasks`), or a clear error."""
    task = views.get(task_id)
    if task is None:
        raise ConfigError(f"there is no task {task_id} on this deployment")
    rounds: Sequence[RoundView] = task.rounds
    if not 1 <= round_number <= len(rounds):
        raise ConfigError(f"task {task_id} has rounds 1-{len(rounds)}, not {round_number}"
                          if rounds else f"task {task_id} has not started a round yet")
    return rounds[round_number - 1]


__all__ = ["RTOL", "SHARE_SLACK_PPM", "Rerun", "changed_commitments", "check_against_chain",
           "compare_rerun", "judged", "replay_screens", "rerun_round", "round_of", "unjudged"]
