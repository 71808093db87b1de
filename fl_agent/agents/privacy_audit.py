"""The privacy checks of a round's evidence that anyone can run (``fl-agent evidence check``),
beside :mod:`fl_agent.agents.audit`'s check against the chain.

* :func:`receipt_problems`: every update the round accepted must have a public privacy
  receipt that the aggregator's check (:func:`fl_agent.privacy.receipts.check_receipt`)
  passes, but for what only the opened update shows (its size and entries), and in an
  example-level dp task with an ε above its sender's earlier receipts and at least what its
  DP-SGD records compose to.
* :func:`dp_fedavg_problems`: in a participant-level dp task, every finalised round's
  evidence records its DP-FedAvg (:mod:`fl_agent.privacy.central`): the plan's clip, δ and
  accountant, the chain's count of finalised rounds, the round's accepted updates, and an ε
  the accountant confirms, with a noise that keeps the whole task within its budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from fl_agent.agents.audit import judged
from fl_agent.agents.evidence import RoundEvidence
from fl_agent.chain.history import RoundView, TaskView

#: Evidence formats from before DP-FedAvg's record.
_WITHOUT_DP_RECORD = tuple(f"fairfl-round-evidence/{v}" for v in (1, 2, 3, 4))


def receipt_problems(evidence: RoundEvidence, view: RoundView, plan: Any, read: Any,
                     earlier: Sequence[RoundView] = (),
                     base_steps: int | None = None) -> list[str]:
    """The accepted updates whose public privacy receipt the aggregator should have refused
    (:func:`fl_agent.privacy.receipts.check_receipt`, without what only the opened update
    shows: its size and entries; in an example-level dp task also
    :func:`~fl_agent.privacy.receipts.check_history` against the sender's receipts of the
    ``earlier`` rounds and the round's workload, with the task's ``base_steps``);
    ``plan`` is the task's privacy plan (None: nothing to check), ``read(cid)`` the store's
    bytes. A receipt the store does not serve counts; an earlier one it does not serve is
    left out of the history, as the aggregator leaves it out."""
    from fl_agent.errors import FairFLError, StorageError
    from fl_agent.learning.workload import Workload
    from fl_agent.privacy.receipts import check_history, check_receipt, read_receipt
    from fl_agent.storage.base import NodeUnavailableError

    matched = judged(evidence, view)
    if plan is None or matched is None:
        return []
    history = plan.dp is not None and plan.dp.level == "example"
    cache: dict[str, Any] = {}

    def receipt_at(cid: str) -> Any:
        """An earlier receipt, read once (None: not served, or not a receipt)."""
        if cid not in cache:
            try:
                cache[cid] = read_receipt(read(cid))
            except StorageError:
                cache[cid] = None  # not served: the aggregator leaves it out too
        return cache[cid]

    workloads: dict[str, Any] = {}

    def workload_of(rnd: RoundView) -> Any:
        if rnd.workload_cid not in workloads:
            workloads[rnd.workload_cid] = Workload.from_json(read(rnd.workload_cid))
        return workloads[rnd.workload_cid]

    problems = []
    for verdict, submission in zip(evidence.verdicts, matched, strict=True):
        if not verdict.accepted:
            continue
        sender = submission.participant.lower()
        try:
            data = read(submission.privacy_cid) if submission.privacy_cid else None
            receipt = check_receipt(data, plan, task=evidence.task,
                                    round_number=evidence.round,
                                    participant=submission.participant, update_bytes=None)
            if history:
                past = [(rnd, s) for rnd in earlier for s in rnd.submissions
                        if s.participant.lower() == sender]
                found = [r for rnd, s in past if s.privacy_cid
                         and (r := receipt_at(s.privacy_cid)) is not None
                         and (r.task, r.round, r.participant) == (evidence.task, rnd.round,
                                                                 sender)]
                floor = None if base_steps is None else sum(
                    min(workload_of(rnd).steps_for(sender), base_steps)
                    for rnd in {rnd.round: rnd for rnd, _ in past}.values()) \
                    + min(workload_of(view).steps_for(sender), base_steps)
                check_history(receipt, found, claimed=submission.samples,
                              batch_size=workload_of(view).batch_size,
                              earlier_claims=[s.samples for _, s in past], steps_floor=floor)
        except NodeUnavailableError:
            raise  # the reader's store is down: nothing to say about the aggregator
        except FairFLError as err:
            problems.append(f"{verdict.participant}: accepted, but {err}")
    return problems


def dp_fedavg_problems(evidence: RoundEvidence, task: TaskView, plan: Any) -> list[str]:
    """What is wrong with the DP-FedAvg record of ``evidence``, a round of ``task`` whose
    privacy plan is ``plan`` (None or no participant-level dp: there must be none)."""
    from fl_agent.privacy.central import DPFedAvgRecord, record_problems

    dp = plan.dp if plan is not None else None
    expected = dp is not None and dp.level == "participant" and bool(evidence.new_model)
    if not expected:
        return [] if evidence.dp_fedavg is None else [
            "the evidence records a DP-FedAvg the task's plan does not ask for here"]
    if evidence.format in _WITHOUT_DP_RECORD:
        return []  # written before the record existed
    try:
        record = None if evidence.dp_fedavg is None \
            else DPFedAvgRecord.model_validate(evidence.dp_fedavg)
    except ValidationError as err:
        return [f"the evidence's DP-FedAvg record is malformed: {err.errors()[0]['msg']}"]
    applications = sum(r.finalized for r in task.rounds[:evidence.round])
    return record_problems(record, dp, applications=applications,
                           accepted=sum(v.accepted for v in evidence.verdicts),
                           rounds=task.rounds_planned)
