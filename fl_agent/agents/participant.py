"""The participant agent: joins a task, trains on every round it is given, uploads, submits.

Wiring only: chain access goes through :class:`fl_agent.chain.FairFL`, content through a
:class:`~fl_agent.storage.store.ContentStore`, and the learning is the pure functions of
:mod:`fl_agent.learning`. The agent watches ``RoundStarted`` and ``TaskCompleted`` of its
task with an :class:`~fl_agent.chain.watcher.EventWatcher` whose cursor lives in
``state_dir`` (one file per ledger contract, task and account); after a restart it
resumes where it stopped, and the ledger's record of its last submitted round guards
against submitting twice.

The task's models are encrypted (:mod:`fl_agent.crypto.envelopes`): the agent publishes its
member key in its registry metadata when it joins, opens the task key from each round's
keyring, decrypts the global model, and seals its update to the aggregator's key, bound to
its address and the round. A member left out of a round's readers (no accepted update
after its trial rounds, see :func:`fl_agent.agents.access.readers`) trains on the newest
model it was given the key to, read back from the chain and the store (also after a
restart), so an honest member can earn its way back. A round's global model,
workload or keyring that cannot be opened or decoded is reported and the round skipped; the
agent keeps serving the next rounds. A revert of its submission (the window closed, it was
blacklisted) is reported the same way; once blacklisted it stops. A node or store that does
not answer (:func:`fl_agent.retry.transient`) skips nothing: the event is not acknowledged
and is handled again. The sealed update is kept on disk from before its upload until it is
on chain, so a retry, or a restart after a crash, sends the same update without training
(and spending privacy budget) again.

A task with a privacy plan (:mod:`fl_agent.privacy.plan`) is served through
:class:`~fl_agent.privacy.local.LocalPrivacy`: DP-SGD with a budget, sparse or encrypted
updates, a watermark whose key the agent commits to on chain when it joins. Its state (the
ε spent, the pruning residual, the watermark key) lives next to the cursor and is saved
right after training, before anything is uploaded, so that a crash can only over-count the
privacy spent. Each update goes with a public privacy receipt, named on chain. A
participant whose budget is spent stops and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from fl_agent.agents.access import (
    holders_of,
    member_key,
    newest_readable_round,
    participant_metadata,
)
from fl_agent.chain.client import FairFL, chain_height
from fl_agent.chain.records import RoundStatus, TaskStatus, TxReceipt
from fl_agent.chain.watcher import EventWatcher
from fl_agent.crypto.envelopes import Keyring, NotAReaderError, decrypt_model, seal_update
from fl_agent.crypto.sealing import public_bytes
from fl_agent.errors import ChainError, ConfigError, ContractRevertError, FairFLError, StorageError
from fl_agent.faults import failpoint
from fl_agent.learning.models import check_seed
from fl_agent.learning.task_doc import TaskDocument
from fl_agent.learning.training import TrainResult, round_seed, train_local
from fl_agent.learning.weights import decode_weights, encode_weights
from fl_agent.learning.workload import Workload
from fl_agent.privacy.local import BudgetExhausted, LocalPrivacy
from fl_agent.retry import transient
from fl_agent.storage.store import ContentStore
from fl_agent.timings import Stopwatch

#: Turns (global vector, honest training result) into the vector to upload. The simulation
#: uses it for model-poisoning attacks; a real participant uploads what it trained.
UpdateHook = Callable[[np.ndarray, TrainResult], np.ndarray]


def load_task_document(store: ContentStore, spec_cid: str) -> TaskDocument:
    """The task document at ``spec_cid`` (raises StorageError / ConfigError when bad)."""
    try:
        raw = store.get(spec_cid)
    except StorageError as err:
        raise StorageError(f"the task document {spec_cid!r} named on chain cannot be read: "
                           f"{err}") from err
    return TaskDocument.from_json(raw)


@dataclass(frozen=True)
class Submission:
    """One update this agent put on chain."""

    task_id: int
    round: int
    update_cid: str
    num_samples: int
    steps: int
    training_millis: int
    loss: float
    receipt: TxReceipt


@dataclass
class Skipped:
    """A round this agent could not serve, and why."""

    round: int
    reason: str


class PreparedUpdate(BaseModel):
    """A round's sealed update and what goes with it on chain, as prepared before upload."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64",
                              ser_json_inf_nan="constants")  # a free rider's loss is NaN

    round: int
    sealed: bytes
    receipt: bytes  # the privacy receipt document (empty without a privacy plan)
    num_samples: int
    steps: int
    millis: int
    loss: float


@dataclass
class ParticipantAgent:
    """One participant of one task. ``X`` holds raw features (the task's standardisation
    is applied here), ``y`` integer labels."""

    fairfl: FairFL
    store: ContentStore
    account: Any
    task_id: int
    X: np.ndarray
    y: np.ndarray
    state_dir: Path
    seed: int = 0
    confirmations: int = 0
    update_hook: UpdateHook | None = None
    train: bool = True  # False: upload the global model untouched (a free rider, for tests)
    #: Simulation only: report ``steps * device_millis_per_step`` as the training time (a
    #: simulated device of that speed) instead of the wall clock, which on one machine is
    #: the same for everybody.
    device_millis_per_step: float | None = None
    log: Callable[[str], None] = field(default=lambda message: None)

    def __post_init__(self) -> None:
        check_seed(self.seed)
        self.address = str(self.account.address)
        task = self.fairfl.ledger.task(self.task_id)  # ChainError for an unknown task
        self.document = load_task_document(self.store, task.spec_cid)
        self.X = self.document.data.standardize(self.X)
        self.y = np.asarray(self.y)
        if self.y.shape != (self.X.shape[0],) or not np.issubdtype(self.y.dtype, np.integer):
            raise ConfigError(f"need one integer label per example: {self.X.shape[0]} "
                              f"examples, labels {self.y.dtype} {self.y.shape}")
        if len(self.y) == 0:
            raise ConfigError("the participant has no training data")
        if self.y.min() < 0 or self.y.max() >= self.document.data.num_classes:
            raise ConfigError(f"labels must lie in 0..{self.document.data.num_classes - 1}")
        self.blacklisted = False
        self.exhausted = False  # its privacy budget is spent
        self.done = task.status in (TaskStatus.COMPLETED, TaskStatus.CANCELLED)
        self.privacy = self._load_privacy(task.rounds)
        self.member_key = member_key(self.fairfl, self.account)
        self._keyrings: dict[str, dict[int, bytes]] = {}
        self._last_read: tuple[int, np.ndarray] | None = None  # round, its global model
        self._earlier: dict[int, tuple[Any, Workload]] = {}  # round -> RoundStarted, workload
        self._holders: dict[str, frozenset[str]] = {}  # keyring CID -> the members it names
        self.watcher = EventWatcher(
            self.fairfl.ledger.contract, ("RoundStarted", "TaskCompleted", "TaskCancelled"),
            Path(self.state_dir) / (f"participant-{self.fairfl.ledger.address.lower()}-"
                                    f"{self.task_id}-{self.address.lower()}.json"),
            start_block=self.fairfl.deployment.block, confirmations=self.confirmations,
            filters={"taskId": self.task_id})

    # -- setup --------------------------------------------------------------------------
    def join(self) -> list[TxReceipt]:
        """Registers (if needed) with its member key in the metadata, publishes the key if
        an earlier registration lacks it, and joins the task (if needed); returns the
        transactions."""
        receipts = []
        me = self.fairfl.registry.participant(self.address)
        if me.blacklisted:
            raise ChainError(f"{self.address} is blacklisted; it cannot take part")
        metadata_cid = self.store.add(participant_metadata(public_bytes(self.member_key)))
        if not me.registered:
            receipts.append(self.fairfl.registry.register(metadata_cid, sender=self.account))
        elif me.metadata_cid != metadata_cid:
            receipts.append(self.fairfl.registry.update_metadata(metadata_cid,
                                                                 sender=self.account))
        if not self.fairfl.ledger.membership(self.task_id, self.address).joined:
            receipts.append(self.fairfl.ledger.join(self.task_id, sender=self.account))
        commitment = self.watermark_commitment()
        if commitment is not None:
            committed = self.fairfl.ledger.watermark_commitment(
                self.task_id, self.address).commitment
            if committed == bytes(32):
                try:
                    receipts.append(self.fairfl.ledger.commit_watermark(
                        self.task_id, commitment, sender=self.account))
                except ContractRevertError as err:
                    if err.error_name != "TaskLedgerTrainingStarted":
                        raise
                    # Joined after round 1 started (or it started between join and commit).
                    self.log(f"[yellow]task {self.task_id} has started training: watermark "
                             "keys are committed before round 1, so this participant's "
                             "watermark can never be claimed[/]")
            elif committed != commitment:
                raise ConfigError(
                    f"{self.address} committed another watermark key to task {self.task_id} "
                    f"than the one in {self._privacy_dir()}; restore that key file")
        return receipts

    # -- privacy ------------------------------------------------------------------------
    def _privacy_dir(self) -> Path:
        return Path(self.state_dir) / (f"privacy-{self.fairfl.ledger.address.lower()}-"
                                       f"{self.task_id}-{self.address.lower()}")

    def _load_privacy(self, rounds: int) -> LocalPrivacy | None:
        plan = self.document.privacy
        if plan is None:
            return None
        folder = self._privacy_dir()
        files = {p.name: p.read_bytes() for p in folder.glob("*")} if folder.exists() else {}
        context = None
        if plan.he is not None:
            from fl_agent.privacy.he_context import PublicContext, context_fingerprint

            raw = self.store.get(plan.he.context_cid)
            if context_fingerprint(raw) != plan.he.fingerprint:
                raise ConfigError(f"the CKKS context at {plan.he.context_cid} is not the one "
                                  "the task document names (fingerprint mismatch)")
            context = PublicContext(raw)
        privacy = LocalPrivacy.restore(plan, self.document.model, rounds,
                                       self.document.training.steps, files, context)
        self._save_privacy(privacy)  # a new watermark key is kept before it is committed
        return privacy

    def _save_privacy(self, privacy: LocalPrivacy) -> None:
        folder = self._privacy_dir()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name, data in privacy.state().items():
            partial = folder / f".{name}.partial"
            partial.write_bytes(data)
            partial.chmod(0o600)  # the watermark key is a secret
            partial.replace(folder / name)

    def watermark_commitment(self) -> bytes | None:
        """The commitment to this participant's watermark key, when the task watermarks."""
        if self.privacy is None or self.privacy.watermark_key is None:
            return None
        from fl_agent.privacy.watermark import commitment

        return commitment(self.privacy.watermark_key, self.address, self.task_id)

    # -- rounds -------------------------------------------------------------------------
    def handle(self, log: Any) -> Submission | None:
        """Serves one ``RoundStarted`` (or notes ``TaskCompleted`` or ``TaskCancelled``)."""
        if log.event_name in ("TaskCompleted", "TaskCancelled"):
            self.done = True
            return None
        round_number = int(log.round)
        clock = Stopwatch("participant", task=self.task_id, round=round_number,
                          participant=self.address)
        if self.fairfl.registry.is_blacklisted(self.address):
            self.blacklisted = True
            raise ChainError(f"{self.address} is blacklisted; it can no longer submit")
        membership = self.fairfl.ledger.membership(self.task_id, self.address)
        if membership.last_submitted_round >= round_number:
            return None  # already submitted before a restart
        if not self._still_open(round_number):
            self.log(f"round {round_number} is already closed; skipped")
            return None  # an old round replayed after joining late or a long restart
        clock.lap("checks")
        prepared = self._prepared(round_number)
        if prepared is None:
            prepared = self._prepare(log, round_number, clock)
        privacy_cid = self.store.add(prepared.receipt) if prepared.receipt else ""
        cid = self.store.add(prepared.sealed)
        clock.lap("upload")
        failpoint("participant:uploaded")
        receipt = self.fairfl.ledger.submit_update(
            self.task_id, round_number, cid, prepared.num_samples, max(1, prepared.millis),
            sender=self.account, privacy_cid=privacy_cid)
        self._prepared_path().unlink(missing_ok=True)
        clock.done("submit")
        failpoint("participant:submitted")
        self.log(f"round {round_number}: submitted {cid} ({prepared.num_samples} samples, "
                 f"{prepared.steps} steps, {prepared.millis} ms)")
        return Submission(self.task_id, round_number, cid, prepared.num_samples,
                          prepared.steps, prepared.millis, prepared.loss, receipt)

    # -- a round's update, kept until it is on chain -----------------------------------
    def _prepared_path(self) -> Path:
        return Path(self.state_dir) / (f"prepared-{self.fairfl.ledger.address.lower()}-"
                                       f"{self.task_id}-{self.address.lower()}.json")

    def _prepared(self, round_number: int) -> PreparedUpdate | None:
        """The update prepared for ``round_number`` by an earlier attempt that did not get it
        on chain (the store or the node failed, the process died), if any."""
        path = self._prepared_path()
        if not path.exists():
            return None
        prepared = PreparedUpdate.model_validate_json(path.read_bytes())
        return prepared if prepared.round == round_number else None

    def _prepare(self, log: Any, round_number: int, clock: Stopwatch) -> PreparedUpdate:
        """Trains on the round's model and seals the update; keeps it (and the privacy state)
        on disk before anything leaves this machine, so that a retry sends the same update
        and spends no privacy budget twice."""
        workload = Workload.from_json(self.store.get(str(log.workloadCid)))
        if workload.aggregator_key is None:
            raise ConfigError(f"round {round_number}'s workload names no aggregator key to "
                              "seal the update to")
        global_vector = self._model_to_train_on(workload, str(log.globalModelCid), round_number)
        clock.lap("fetch")
        plan = self.document.training
        steps = workload.steps_for(self.address)
        seed = round_seed(self.seed, round_number)
        if not self.train:
            result = TrainResult(vector=global_vector, num_samples=len(self.y), steps=steps,
                                 train_millis=1, loss=float("nan"))
        elif self.privacy is not None:
            try:
                result = self.privacy.train(global_vector, self.X, self.y, steps, seed=seed,
                                            batch_size=workload.batch_size, lr=plan.lr,
                                            momentum=plan.momentum)
            except BudgetExhausted:
                self.exhausted = True
                raise
        else:
            result = train_local(self.document.model, global_vector, self.X, self.y, steps,
                                 seed=seed, batch_size=workload.batch_size, lr=plan.lr,
                                 momentum=plan.momentum)
        vector = result.vector
        if self.update_hook is not None:
            vector = self.update_hook(global_vector, result)
        receipt_doc = b""
        if self.privacy is None:
            payload = encode_weights(self.document.model, np.asarray(vector, np.float32))
        else:
            payload, fields = self.privacy.encode(global_vector, vector)
            self._save_privacy(self.privacy)  # before anything leaves this machine
            receipt_doc = self.privacy.receipt(
                self.task_id, round_number, self.address, payload, fields,
                self.watermark_commitment()).to_json()
        sealed = seal_update(payload, workload.aggregator_key, self.task_id, round_number,
                             self.address)
        millis = result.train_millis if self.device_millis_per_step is None \
            else round(result.steps * self.device_millis_per_step)  # DP may train fewer
        prepared = PreparedUpdate(round=round_number, sealed=sealed, receipt=receipt_doc,
                                  num_samples=result.num_samples, steps=result.steps,
                                  millis=millis, loss=result.loss)
        path = self._prepared_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(prepared.model_dump_json())
        partial.replace(path)
        clock.lap("train_and_seal")
        return prepared

    def _model_to_train_on(self, workload: Workload, model_cid: str,
                           round_number: int) -> np.ndarray:
        """The round's global model; for a member that was not given its key (see
        :func:`fl_agent.agents.access.readers`), the newest earlier one it was given the key
        to (:func:`~fl_agent.agents.access.newest_readable_round`), so that it can still
        earn its way back with an accepted update. That one is found on the chain and in
        the store, not in memory: after a restart, or a round it was named in but missed,
        it trains on the model the aggregator measures its update from."""
        try:
            return self._read_round_model(round_number, workload, model_cid)
        except NotAReaderError as err:
            number = newest_readable_round(
                round_number - 1, self.address, lambda n: self._round(n)[1].keyring,
                lambda cid: holders_of(self.store.get, cid, self._holders))
            if number is None:
                raise
            self.log(f"round {round_number}: {err}; training on round {number}'s model, "
                     "the newest this member was given the key to")
            log, earlier = self._round(number)
            return self._read_round_model(number, earlier, str(log.globalModelCid))

    def _read_round_model(self, number: int, workload: Workload, model_cid: str) -> np.ndarray:
        """Round ``number``'s global model, decrypted with its keyring's keys (the last one
        read is kept)."""
        if self._last_read is None or self._last_read[0] != number:
            vector = decode_weights(decrypt_model(self.store.get(model_cid),
                                                  self._task_keys(workload), self.task_id),
                                    self.document.model)
            self._last_read = (number, vector)
        return self._last_read[1]

    def _round(self, number: int) -> tuple[Any, Workload]:
        """An earlier round's ``RoundStarted`` log and workload, read once (a round's are
        fixed: round numbers only grow)."""
        if number not in self._earlier:
            log = self.fairfl.ledger.round_started(self.task_id, number)
            self._earlier[number] = (log, Workload.from_json(self.store.get(str(log.workloadCid))))
        return self._earlier[number]

    def _task_keys(self, workload: Workload) -> dict[int, bytes]:
        """The task keys this member holds, from the round's keyring."""
        if workload.keyring is None:
            return {}
        if workload.keyring not in self._keyrings:
            ring = Keyring.from_json(self.store.get(workload.keyring))
            self._keyrings[workload.keyring] = ring.open(self.address, self.member_key)
        return self._keyrings[workload.keyring]

    def read_global_model(self) -> np.ndarray:
        """The task's current global model, decrypted with this member's task keys."""
        return decode_weights(read_task_model_bytes(self.fairfl, self.store, self.task_id,
                                                    self.address, self.member_key,
                                                    self.document), self.document.model)

    def _still_open(self, round_number: int) -> bool:
        if int(self.fairfl.ledger.contract.task(self.task_id).currentRound) != round_number:
            return False
        rnd = self.fairfl.ledger.round(self.task_id, round_number)
        return rnd.status == RoundStatus.OPEN and chain_height() < rnd.deadline_block

    def step(self) -> tuple[list[Submission], list[Skipped]]:
        """Handles every new event once; returns what was submitted and what was skipped."""
        submitted: list[Submission] = []
        skipped: list[Skipped] = []
        for log in self.watcher.poll():
            if self.blacklisted or self.exhausted:
                break
            try:
                outcome = self.handle(log)
                if outcome is not None:
                    submitted.append(outcome)
            except FairFLError as err:
                if transient(err):
                    raise  # the node or the store did not answer: handled again, not skipped
                if isinstance(err, ContractRevertError) \
                        and err.error_name == "TaskLedgerBlacklisted":
                    self.blacklisted = True
                skipped.append(Skipped(_round_of(log), str(err)))
                self.log(f"[yellow]round skipped:[/] {err}")
            self.watcher.ack(log)
        return submitted, skipped

    @property
    def finished(self) -> bool:
        return self.done or self.blacklisted or self.exhausted


def read_task_model_bytes(fairfl: FairFL, store: ContentStore, task_id: int, address: str,
                          private: Any, document: TaskDocument) -> bytes:
    """Task ``task_id``'s current global model (safetensors, checked against the task's
    model spec) as a member or the creator reads it: the newest keyring opens every epoch's
    task key this reader was given."""
    from fl_agent.agents.access import latest_keyring

    task = fairfl.ledger.task(task_id)
    blob = store.get(task.global_model_cid)
    keyring = latest_keyring(fairfl, store, task_id)
    keys = Keyring.from_json(store.get(keyring)).open(address, private) if keyring else {}
    plain = decrypt_model(blob, keys, task_id)
    decode_weights(plain, document.model)
    return plain


def _round_of(log: Any) -> int:
    return int(log.round) if log.event_name == "RoundStarted" else 0
