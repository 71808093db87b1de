"""How the aggregator gets a round's submitted updates from the store, and when an update
out of reach is its sender's fault rather than the store's; then how it reads one: the
weights or a sparse delta within the task's density, and its privacy receipt checked
against the task's plan.

Split from :mod:`fl_agent.agents.aggregator`, which (with :mod:`fl_agent.agents.he_round`)
calls it for every update of a round. I/O and wiring: the store and the chain's height here,
the checks themselves in :mod:`fl_agent.privacy.receipts` and :mod:`fl_agent.privacy.sparse`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fl_agent.chain.client import chain_height
from fl_agent.errors import ConfigError, StorageError
from fl_agent.learning.models import param_count
from fl_agent.learning.weights import decode_weights
from fl_agent.storage.store import NodeUnavailableError

if TYPE_CHECKING:
    from fl_agent.agents.aggregator import AggregatorAgent


class UpdateUnavailableError(StorageError):
    """A submitted update that the store could not get, while it served everything else,
    until the round's window closed."""


class UpdateNotYetAvailableError(NodeUnavailableError):
    """A submitted update that the store cannot get yet, while the round's window is open:
    the round waits (a ``ConnectionError``, so the agent's loop tries again later)."""


@dataclass
class UpdateFetcher:
    """Fetches a round's updates from the agent's store (whichever it holds at the time)
    and remembers which were out of reach."""

    agent: AggregatorAgent
    _unreachable: set[str] = field(default_factory=set, init=False, repr=False)
    #: For :func:`~fl_agent.privacy.receipts.check_history`: earlier rounds' receipts by
    #: CID (None: not a receipt), those the store could not serve, each sender's earlier
    #: submissions (for the round they were listed for), and the rounds' workloads.
    _receipts: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _unreadable: set[str] = field(default_factory=set, init=False, repr=False)
    _named: tuple[int, dict[str, list[tuple[int, str, int]]]] = field(
        default=(0, {}), init=False, repr=False)
    _workloads: dict[int, Any] = field(default_factory=dict, init=False, repr=False)
    _rounds: int | None = field(default=None, init=False, repr=False)
    _holders: dict[str, frozenset[str]] = field(default_factory=dict, init=False, repr=False)
    _models: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def fetch(self, cid: str, global_cid: str, deadline_block: int) -> bytes:
        """A submitted update's bytes from the store.

        When the store's node does not answer (:class:`NodeUnavailableError`), the aggregator
        asks it for the round's global model, which it must hold. If that fails too, the node
        is down: the error goes up, nobody is judged, and the agent tries the round again
        later (its service loop waits on a ``ConnectionError``). If the node answers, the
        update alone is out of reach: until the round's window closes its sender may still
        provide it (a slow or briefly unreachable peer), so the round waits too
        (:class:`UpdateNotYetAvailableError`); after that it is the sender's doing,
        :class:`UpdateUnavailableError`, and the sender is rejected."""
        closed = chain_height() > deadline_block
        if closed and cid in self._unreachable:  # tried in the window: not again (each try
            raise UpdateUnavailableError(  # can cost minutes, and the grace period runs)
                f"{cid} could not be fetched, while the store serves the round's model, "
                "until the round's window closed: nobody provides it")
        try:
            return self.agent.store.get(cid)
        except NodeUnavailableError as err:
            self.agent.store.get(global_cid)  # raises if the node itself is down
            self._unreachable.add(cid)
            if not closed:
                raise UpdateNotYetAvailableError(
                    f"{cid} could not be fetched yet; waiting for it until block "
                    f"{deadline_block}, the end of the round's window ({err})") from err
            raise UpdateUnavailableError(
                f"{cid} could not be fetched, while the store serves the round's model, "
                f"until the round's window closed: nobody provides it ({err})") from err

    def decode(self, plain: bytes, global_vector: np.ndarray) -> tuple[np.ndarray, int | None]:
        """An opened update's full parameter vector (weights, or a sparse delta on the global
        model when the task prunes: no denser than the task's ratio allows,
        :func:`fl_agent.privacy.sparse.decode_for_plan`), and the entries it sent when
        sparse. Strictly checked either way."""
        document = self.agent.document
        privacy = document.privacy
        if privacy is not None and privacy.prune is not None:
            from fl_agent.privacy.sparse import decode_for_plan, densify

            delta = decode_for_plan(plain, document.model, privacy.prune.ratio,
                                    privacy.prune.method)
            return densify(delta, global_vector), delta.k
        if privacy is not None and privacy.he is not None:
            raise ConfigError("this task aggregates ciphertexts (he): its rounds are "
                              "finalized by fl_agent.agents.he_round, not here")
        return decode_weights(plain, document.model), None

    def check_receipt(self, log: Any, round_number: int, update_bytes: int,
                      kept: int | None, global_cid: str, deadline_block: int,
                      vector: np.ndarray | None = None,
                      global_vector: np.ndarray | None = None) -> None:
        """Refuses a submission to a task with a privacy plan whose receipt (named by its
        ``privacyCid``) is missing or disagrees with the plan or the update
        (:func:`fl_agent.privacy.receipts.check_receipt`), or, in an example-level dp task,
        that disagrees with what the chain shows of its sender's task or with its earlier
        receipts (:func:`~fl_agent.privacy.receipts.check_history`), or, in a plain one
        that asks for it, with the length of the decoded ``vector``'s change from the model
        its sender trained on (:meth:`trained_from`; ``global_vector``, the round's model
        the caller has decoded already, for every member the round's keyring names;
        :func:`~fl_agent.privacy.receipts.check_update_length`);
        fetched like an update, so a receipt not yet reachable makes the round wait as an
        update does."""
        document = self.agent.document
        if document.privacy is None:
            return
        from fl_agent.privacy.receipts import (
            check_history,
            check_receipt,
            check_update_length,
            length_checked,
        )

        cid = str(getattr(log, "privacyCid", "") or "")
        data = self.fetch(cid, global_cid, deadline_block) if cid else None
        receipt = check_receipt(data, document.privacy, task=self.agent.task_id,
                                round_number=round_number, participant=str(log.participant),
                                update_bytes=update_bytes, kept=kept,
                                length=param_count(document.model))
        self.agent.store.add(data)  # a copy kept: later rounds and audits read it back
        self._receipts[cid] = receipt
        dp = document.privacy.dp
        if dp is not None and dp.level == "example":
            sender = str(log.participant)
            past = self._submitted(round_number).get(sender.lower(), [])
            base = document.training.steps
            floor = sum(min(self._workload(number).steps_for(sender), base)
                        for number in {number for number, _, _ in past} | {round_number})
            check_history(receipt, self.earlier_receipts(sender, round_number),
                          claimed=int(log.numSamples),
                          batch_size=self._workload(round_number).batch_size,
                          earlier_claims=[claim for _, _, claim in past], steps_floor=floor)
            if vector is not None and length_checked(document.privacy):
                training = document.training
                start = self.trained_from(round_number, sender, global_vector)
                length = float(np.linalg.norm(np.asarray(vector, np.float64) - start))
                check_update_length(
                    receipt, length, dp=dp, rounds=self._task_rounds(), base_steps=base,
                    steps=min(self._workload(round_number).steps_for(sender), base),
                    lr=training.lr, momentum=training.momentum,
                    claimed=int(log.numSamples), params=param_count(document.model))

    def trained_from(self, round_number: int, sender: str,
                     current: np.ndarray | None = None) -> np.ndarray:
        """The model ``sender`` trained on in ``round_number``: the round's own (``current``
        when the caller has it decoded), or, for a member its keyring left out, the newest
        earlier round's model it was given the key to
        (:func:`fl_agent.agents.access.newest_readable_round`, the rule
        :meth:`fl_agent.agents.participant.ParticipantAgent._model_to_train_on` follows)."""
        from fl_agent.agents.access import holders_of, newest_readable_round
        from fl_agent.crypto.envelopes import decrypt_model

        number = newest_readable_round(
            round_number, sender, lambda n: self._workload(n).keyring,
            lambda cid: holders_of(self.agent.store.get, cid, self._holders))
        if number is None:
            number = round_number  # it could read no model: nothing else to measure from
        if number == round_number and current is not None:
            return current
        if number not in self._models:
            opened = self.agent._round_started(number)
            self._models = {number: decode_weights(
                decrypt_model(self.agent.store.get(str(opened.globalModelCid)),
                              self.agent.keys.keys, self.agent.task_id),
                self.agent.document.model)}  # one kept: an earlier round's
        return self._models[number]

    def _task_rounds(self) -> int:
        """The task's round count on chain (what participants calibrate their noise for),
        read once."""
        if self._rounds is None:
            self._rounds = int(self.agent.fairfl.ledger.task(self.agent.task_id).rounds)
        return self._rounds

    def _workload(self, round_number: int) -> Any:
        """A round's workload document (what it assigned each sender), read once."""
        from fl_agent.learning.workload import Workload

        if round_number not in self._workloads:
            opened = self.agent._round_started(round_number)
            self._workloads[round_number] = Workload.from_json(
                self.agent.store.get(str(opened.workloadCid)))
        return self._workloads[round_number]

    def _submitted(self, round_number: int) -> dict[str, list[tuple[int, str, int]]]:
        """Each sender's submissions to the task's rounds before ``round_number`` (round,
        receipt CID, claimed samples), from the chain, listed once per round."""
        if self._named[0] != round_number:
            named: dict[str, list[tuple[int, str, int]]] = {}
            for log in self.agent.fairfl.ledger.events("UpdateSubmitted",
                                                       taskId=self.agent.task_id):
                if int(log.round) < round_number:
                    named.setdefault(str(log.participant).lower(), []).append(
                        (int(log.round), str(getattr(log, "privacyCid", "") or ""),
                         int(log.numSamples)))
            self._named = (round_number, named)
        return self._named[1]

    def earlier_receipts(self, participant: str, round_number: int) -> list[Any]:
        """The receipts ``participant`` named in the task's rounds before ``round_number``
        that are what they say: each read once, from the copy kept when it was checked or
        from the store; one the store could not serve is not tried again (a sender could
        otherwise make every later round wait on it)."""
        from fl_agent.errors import StorageError
        from fl_agent.privacy.receipts import read_receipt

        found = []
        for number, cid, _ in self._submitted(round_number).get(participant.lower(), []):
            if not cid or cid in self._unreadable:
                continue
            if cid not in self._receipts:
                try:
                    self._receipts[cid] = read_receipt(self.agent.store.get(cid))
                except StorageError:
                    self._unreadable.add(cid)
                    continue
            receipt = self._receipts[cid]
            if receipt is not None and (receipt.task, receipt.round, receipt.participant) \
                    == (self.agent.task_id, number, participant.lower()):
                found.append(receipt)
        return found

    def check_reach(self, unavailable: int, submitted: int, rnd: Any) -> None:
        """Raises when most of a round's updates are out of reach: then the store, not the
        senders, is likely at fault (a node that answers but is cut off from its peers), and
        nobody is judged (a ``ConnectionError``: the agent waits and tries again, every
        update again). But only until half a window past the round's deadline: sybils that
        are most of a round's senders and submit CIDs nobody provides would otherwise never
        be judged, and the round would sit until anyone closes it without a verdict. After
        that the unreachable senders are rejected, which an honest member caught in a real
        outage of the aggregator's store can appeal."""
        if unavailable * 2 <= submitted:
            return
        patience = rnd.deadline_block + (rnd.deadline_block - rnd.start_block) // 2
        if chain_height() <= patience:
            self._unreachable.clear()
            raise NodeUnavailableError(
                f"{unavailable} of the round's {submitted} updates are out of reach while the "
                "store serves the round's model: the store is likely cut off from its peers "
                "(check `ipfs swarm peers`); judging nobody until it reaches them, or until "
                f"block {patience}")
        self.agent.log(f"[yellow]{unavailable} of the round's {submitted} updates are still out of "
                 f"reach at block {patience}, half a window past the round's deadline: their "
                 "senders are rejected (if this store is cut off from its peers, mend it; "
                 "they can appeal)[/]")


__all__ = ["UpdateFetcher", "UpdateNotYetAvailableError", "UpdateUnavailableError"]
