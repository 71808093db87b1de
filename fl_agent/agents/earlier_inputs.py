"""The aggregator's memory of earlier rounds for screens over several rounds.

Wiring only (the screens themselves: :mod:`fl_agent.aggregation.fairfl`, step 1b with
``FairFL.trigger_rounds`` and step 2's chance test with ``FairFL.noise_rounds``; the round's
input: :attr:`fl_agent.aggregation.base.Round.earlier`). A pruning task screens what each
sender sent over its last rounds added up (docs/privacy-sparse.md). :class:`EarlierInputs`
keeps the deltas the aggregator decoded when it judged a round (the input layer's for the
trigger screen alone, whole for the NOISE check), under its ``state_dir``, and sums each
sender's earlier ones for the next rounds; an update judged elsewhere (before this
aggregator took the task over) is read back from the chain and the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fl_agent.aggregation.base import earlier_window
from fl_agent.crypto.envelopes import decrypt_model, open_update
from fl_agent.errors import FairFLError
from fl_agent.learning.models import param_count
from fl_agent.learning.weights import decode_weights
from fl_agent.storage.store import NodeUnavailableError

if TYPE_CHECKING:
    from fl_agent.agents.aggregator import AggregatorAgent


@dataclass
class EarlierInputs:
    """The earlier rounds' deltas of one aggregator (module docstring)."""

    agent: AggregatorAgent
    _unreachable: set[str] = field(default_factory=set, init=False, repr=False)

    def sums(self, round_number: int, logs: list[Any]
             ) -> tuple[np.ndarray, list[list[str]]] | None:
        """What each of ``logs``' senders sent in its earlier rounds within the rule's window
        (``FairFL.trigger_rounds``, ``noise_rounds``), its deltas summed, as wide as the rule
        reads them (the round's :attr:`~fl_agent.aggregation.base.Round.earlier`), and for
        each sender the CIDs of the updates in that sum, which the evidence records. None
        when the rule screens the update alone, or in round 1.

        Each earlier update is what this aggregator decoded when it judged that round, kept
        under ``state_dir`` (:meth:`keep`): an update its sender stops providing, or that
        the store's garbage collector drops, still counts, and a restart changes nothing. An
        update judged elsewhere (before this aggregator took the task over) is read back from
        the chain and the store. What cannot be had adds nothing and is logged: an update
        that does not decode, one this aggregator cannot open (sealed to an aggregator since
        replaced), one or a model nobody provides while the store serves this round's model
        (tried once per process: it must not hold this round up). Only a store that is down
        raises."""
        layout = self._window()
        if layout is None or round_number <= 1:
            return None
        window, width = layout
        agent = self.agent
        senders = [str(log.participant).lower() for log in logs]
        sums = np.zeros((len(logs), width))
        sources: list[list[str]] = [[] for _ in logs]
        current = str(agent._round_started(round_number).globalModelCid)
        for number in range(max(1, round_number - window + 1), round_number):
            rnd = agent.fairfl.ledger.round(agent.task_id, number)
            global_cid = str(agent._round_started(number).globalModelCid)
            before: np.ndarray | None = None
            for log in agent._submissions(number, rnd.start_block):
                who, cid = str(log.participant).lower(), str(log.updateCid)
                if who not in senders:
                    continue
                delta = self._kept(number, cid, width)
                if delta is None and before is None:
                    before = self._model(number, global_cid, current)
                if delta is None and before is not None:
                    delta = self._read(number, log, before, width, current)
                if delta is None:
                    agent.log(f"[yellow]round {round_number}: {who}'s update of round {number} "
                              "is left out of its screens over rounds (it cannot be had)[/]")
                    continue
                sums[senders.index(who)] += delta
                sources[senders.index(who)].append(cid)
        return sums, sources

    @property
    def folder(self) -> Path:
        """Where the deltas are kept: ``<state_dir>/task-<id>-inputs``."""
        return self.agent.state_dir / f"task-{self.agent.task_id}-inputs"

    def _path(self, number: int, cid: str) -> Path:
        return self.folder / f"r{number}-{cid}.npy"

    def _window(self) -> tuple[int, int] | None:
        """(rounds, width) of what the rule reads (:func:`earlier_window`), or None."""
        return earlier_window(self.agent.strategy, param_count(self.agent.document.model))

    def keep(self, number: int, logs: list[Any], usable: list[int],
             vectors: list[np.ndarray], global_vector: np.ndarray) -> None:
        """Keeps the deltas (as wide as the rule reads them) of round ``number``'s decoded
        updates for the screens of the rounds after it (:meth:`sums`), and drops those out
        of its window."""
        layout = self._window()
        if layout is None:
            return
        window, width = layout
        self.folder.mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(usable):
            path = self._path(number, str(logs[i].updateCid))
            delta = vectors[k][:width].astype(np.float64) - global_vector[:width]
            np.save(path.with_suffix(".tmp.npy"), delta, allow_pickle=False)
            path.with_suffix(".tmp.npy").replace(path)
        for old in self.folder.glob("r*-*.npy"):
            kept_round = old.name[1:].split("-", 1)[0]
            if kept_round.isdigit() and int(kept_round) <= number - window:
                old.unlink(missing_ok=True)

    def _kept(self, number: int, cid: str, width: int) -> np.ndarray | None:
        """What :meth:`keep` kept of that update, or None (not kept, or not as wide as this
        rule reads)."""
        try:
            kept = np.load(self._path(number, cid), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return kept if kept.shape == (width,) and np.isfinite(kept).all() else None

    def _model(self, number: int, global_cid: str, current: str) -> np.ndarray | None:
        """Round ``number``'s global model, or None when it cannot be had while the store
        serves this round's model ``current`` (a store that is down raises)."""
        agent = self.agent
        try:
            return decode_weights(decrypt_model(agent.store.get(global_cid), agent.keys.keys,
                                                agent.task_id), agent.document.model)
        except NodeUnavailableError:
            agent.store.get(current)  # raises if the node itself is down
        except FairFLError:
            pass
        return None

    def _read(self, number: int, log: Any, before: np.ndarray, width: int,
              current: str) -> np.ndarray | None:
        """An earlier update's delta (its first ``width`` values) read back from the store,
        or None when it cannot be had (see :meth:`sums`)."""
        agent = self.agent
        cid = str(log.updateCid)
        if cid in self._unreachable:
            return None
        try:
            plain = open_update(agent.store.get(cid), agent.keys.private, agent.task_id,
                                number, str(log.participant))
            return agent.fetcher.decode(plain, before)[0][:width].astype(np.float64) - \
                before[:width]
        except NodeUnavailableError:
            agent.store.get(current)  # raises if the node itself is down
            self._unreachable.add(cid)
        except FairFLError:
            pass
        return None


__all__ = ["EarlierInputs"]
