"""The aggregator's record of a task's members: each member's published key, when it joined
and how many rounds it could have trained in, and from those, who may read the next model.

Split from :mod:`fl_agent.agents.aggregator`; the rule of who may read is
:func:`fl_agent.agents.access.readers`, this module gathers what it needs from the chain and
the store, and caches what does not change (member keys by metadata document, join blocks,
round start blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fl_agent.agents.access import KeyOutOfReach, Member, published_key, readers

if TYPE_CHECKING:
    from fl_agent.agents.aggregator import AggregatorAgent


@dataclass
class MemberRecords:
    """One aggregator's view of its task's members (module docstring)."""

    agent: AggregatorAgent
    _member_keys: dict[str, bytes | None] = field(default_factory=dict, init=False,
                                                  repr=False)
    _joined: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _round_starts: list[int] = field(default_factory=list, init=False, repr=False)

    def members(self, active: list[str], accepted_now: frozenset[str] = frozenset()
                ) -> list[Member]:
        """The chain's record of each active member, for :func:`access.readers`
        (``accepted_now``: lower-case addresses accepted in a round not yet finalized)."""
        agent = self.agent
        ledger = agent.fairfl.ledger
        current = ledger.task(agent.task_id).current_round
        while len(self._round_starts) < current:
            self._round_starts.append(ledger.round(agent.task_id,
                                                   len(self._round_starts) + 1).start_block)
        if any(a.lower() not in self._joined for a in active):
            self._joined = {str(e.participant).lower(): int(e.block_number) for e in
                            ledger.events("ParticipantJoined", taskId=agent.task_id)}
        records = []
        for address in active:
            metadata = agent.fairfl.registry.participant(address).metadata_cid
            key = self._member_keys.get(metadata)
            if metadata not in self._member_keys:
                try:
                    key = self._member_keys[metadata] = published_key(
                        agent.store, metadata, agent.spec_cid)
                except KeyOutOfReach:  # keyless this time only: asked again next time
                    key = None
                    agent.log(f"[yellow]{address}'s member key document {metadata} is out of "
                              "reach; it cannot read this round's model[/]")
                else:
                    if key is None:
                        agent.log(f"[yellow]{address} published no usable member key (a "
                                  "32-byte X25519 key); it cannot read the task's models[/]")
            accepted = ledger.membership(agent.task_id, address).accepted_rounds
            joined = self._joined.get(address.lower(), 0)
            records.append(Member(address, key,
                                  accepted + (address.lower() in accepted_now),
                                  sum(1 for start in self._round_starts if start > joined),
                                  late=bool(self._round_starts) and joined > self._round_starts[0]))
        return records

    def readers(self, active: list[str], *, excluded: frozenset[str] = frozenset(),
                accepted_now: frozenset[str] = frozenset(),
                contributors_only: bool = False) -> dict[str, bytes]:
        """Who may read the next model: the members :func:`access.readers` lets in, and the
        task's creator (it lists the model). Address -> X25519 public key."""
        chosen = readers(self.members(active, accepted_now), excluded=excluded,
                         contributors_only=contributors_only)
        agent = self.agent
        access = agent.document.access
        if access is not None:
            chosen[agent.creator.lower()] = bytes.fromhex(access.creator_key)
        return chosen


__all__ = ["MemberRecords"]
