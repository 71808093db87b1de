"""How the aggregator gets a round's submitted updates from the store, and when an update
out of reach is its sender's fault rather than the store's.

Split from :mod:`fl_agent.agents.aggregator`, which (with :mod:`fl_agent.agents.he_round`)
calls it for every update of a round. I/O only: the store and the chain's height.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fl_agent.chain.client import chain_height
from fl_agent.errors import StorageError
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
