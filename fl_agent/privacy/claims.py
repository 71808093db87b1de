"""Ownership claims: a member reveals its watermark key for a finished model, and anyone checks
the claim, as pure computation.

A watermark key stays secret while the task runs (:mod:`fl_agent.privacy.watermark`): its
owner committed to it on chain when it joined. Once the task is complete, the owner may
*claim* the final model: ``fl-agent watermark claim`` verifies the model itself, stores a
:class:`WatermarkClaimDocument` (the key, the SHA-256 of the plaintext weights it verified,
and what it measured) and calls ``TaskLedger.claimWatermark`` with the document's CID, which
the contract accepts once per member, from members in good standing that committed a key.

What each reader can check (:func:`check_claim`):

* **everyone**, from the chain and the store alone: the document is well formed and names
  the account and task of the ``WatermarkClaimed`` event; its key hashes to the commitment
  the account made before round 1 (the contract takes no commitment later, so no key can be
  chosen to fit a model the task trained); the key is of the task's kind (the plan's bit
  count, the default carrier: a shorter key, or one on a carrier of its choosing, would be
  cheaper to fit to the initial weights); the claimant had at least one update accepted;
  the document names the listing's weights (their SHA-256, which anyone can copy: it only
  ties the claim to one model). The bits it reports are the claimant's word;
* **whoever can read the model** (its members, its buyers with the downloaded weights): the
  bits themselves, with :func:`fl_agent.privacy.watermark.verify`.

Revealing the key is the price of a public claim: whoever holds both key and model can try
to train the mark away. A claimant who would rather show the key to one arbiter than to
everyone uses ``fl-agent watermark verify`` in front of that arbiter instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from eth_utils import is_checksum_address
from pydantic import Field, field_validator

from fl_agent.documents import Document
from fl_agent.errors import ConfigError
from fl_agent.privacy.watermark_key import (
    WatermarkKey,
    WatermarkResult,
    commitment,
    false_match_probability,
    passes,
)

if TYPE_CHECKING:
    from fl_agent.chain.records import WatermarkClaim
    from fl_agent.learning.models import ModelSpec
    from fl_agent.privacy.plan import PrivacyPlan

#: A check's outcome. ``verified``: re-verified on the model by this reader; ``claimed``:
#: everything a reader without the model can check holds, and the bits are the claimant's
#: word; ``rejected``: something does not hold.
Verdict = Literal["verified", "claimed", "rejected"]


class WatermarkClaimDocument(Document):
    """What a claimant stores and names in ``claimWatermark``."""

    KIND = "FairFL watermark claim"

    format: Literal["fairfl-watermark-claim/1"] = "fairfl-watermark-claim/1"
    task: int = Field(ge=1)
    account: str
    #: The watermark key file's JSON (:meth:`WatermarkKey.to_json`), revealed.
    key: str
    #: SHA-256 (hex) of the plaintext weights the claimant verified: the listing's hash.
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: What the claimant measured on those weights.
    matched: int = Field(ge=0)
    bits: int = Field(ge=1)

    @field_validator("account")
    @classmethod
    def _checksummed(cls, value: str) -> str:
        if not is_checksum_address(value):
            raise ValueError(f"account must be a checksummed address, got {value!r}")
        return value

    @field_validator("key")
    @classmethod
    def _a_key(cls, value: str) -> str:
        WatermarkKey.from_json(value)  # ConfigError says what is wrong
        return value

    def watermark_key(self) -> WatermarkKey:
        return WatermarkKey.from_json(self.key)


def make_claim(key: WatermarkKey, account: str, task_id: int, model_plaintext: bytes,
               result: WatermarkResult) -> WatermarkClaimDocument:
    """The claim document for ``result``, measured with ``key`` on ``model_plaintext``."""
    return WatermarkClaimDocument(
        task=task_id, account=account, key=key.to_json(),
        model_sha256=hashlib.sha256(model_plaintext).hexdigest(),
        matched=result.matched, bits=result.bits)


@dataclass(frozen=True)
class TaskFacts:
    """What a reader knows of the task a claim is on, from the chain and its task document:
    the bit count its plan gives every key (None: the task embeds no watermarks) and the
    accounts that contributed at least one accepted update (lower case)."""

    task_id: int
    plan_bits: int | None
    contributors: frozenset[str]


@dataclass(frozen=True)
class ClaimCheck:
    """One claim as a reader sees it. ``problems`` lists what failed (empty when nothing
    did); ``reported_*`` is the claimant's word (None when it is not even well formed),
    ``rechecked`` this reader's own measurement (None without the model)."""

    account: str
    claim_cid: str
    problems: tuple[str, ...]
    reported_matched: int | None = None
    reported_bits: int | None = None
    rechecked: WatermarkResult | None = None

    @property
    def verdict(self) -> Verdict:
        if self.problems:
            return "rejected"
        return "verified" if self.rechecked is not None else "claimed"

    @property
    def reported_p_value(self) -> float | None:
        if self.reported_matched is None or self.reported_bits is None:
            return None
        return false_match_probability(self.reported_matched, self.reported_bits)


#: What a hostile document can raise on the way in: a malformed or absurdly nested key, a
#: carrier the model does not have.
_BAD_INPUT = (ConfigError, ValueError, RecursionError)


def check_claim(raw: bytes | None, *, claim_cid: str, account: str, committed: bytes,
                task: TaskFacts, model_sha256: bytes, spec: ModelSpec | None = None,
                vector: np.ndarray | None = None) -> ClaimCheck:
    """Checks the claim document ``raw`` (None: the store does not have it) that ``account``
    named in its ``WatermarkClaimed`` event, against its on-chain ``committed`` key hash,
    the ``task`` and the sold model's plaintext ``model_sha256``; with the model's ``spec``
    and weights ``vector``, re-verifies the bits too. Never raises on a bad claim: what is
    wrong is in ``problems``."""
    if raw is None:
        return ClaimCheck(account, claim_cid, ("the claim document is not in the store",))
    try:
        document = WatermarkClaimDocument.from_json(raw)
        key = document.watermark_key()
    except _BAD_INPUT as err:
        return ClaimCheck(account, claim_cid, (f"not a valid claim: {str(err)[:300]}",))
    problems = []
    if document.account.lower() != account.lower() or document.task != task.task_id:
        problems.append(f"the document is {document.account}'s claim on task {document.task}, "
                        f"not {account}'s on task {task.task_id}")
    if commitment(key, account, task.task_id) != committed:
        problems.append("the revealed key is not the one committed on chain")
    if task.plan_bits is None:
        problems.append(f"task {task.task_id} embeds no watermarks")
    elif (key.bits, key.layer) != (task.plan_bits, None):
        # A key of its own making (fewer bits, another carrier) is cheaper to grind.
        problems.append(f"the key is not of the task's kind ({task.plan_bits} bits on the "
                        f"default carrier; it has {key.bits} bits on "
                        f"{key.layer or 'the default carrier'})")
    if account.lower() not in task.contributors:
        problems.append("the claimant contributed no accepted update to the task")
    if document.model_sha256 != model_sha256.hex():
        problems.append("the claim names other weights than the model sold")
    if not 0 <= document.matched <= document.bits == key.bits:
        problems.append(f"reports {document.matched} of {document.bits} bits for a "
                        f"{key.bits}-bit key")
        return ClaimCheck(account, claim_cid, tuple(problems))
    rechecked = None
    if spec is not None and vector is not None and not problems:
        from fl_agent.privacy.watermark import verify  # torch: only for readers of the model

        try:
            rechecked = verify(spec, vector, key)
        except _BAD_INPUT as err:
            problems.append(f"cannot re-check on these weights: {str(err)[:300]}")
        else:
            if not rechecked.verified:
                problems.append(f"the model carries {rechecked.matched} of "
                                f"{rechecked.bits} bits: not verified")
    elif not problems and not passes(document.matched, document.bits):
        problems.append(f"reports only {document.matched} of {document.bits} bits")
    return ClaimCheck(account, claim_cid, tuple(problems), document.matched, document.bits,
                      rechecked)


def check_claims(claims: Iterable[WatermarkClaim], fetch: Callable[[str], bytes | None], *,
                 task: TaskFacts, model_sha256: bytes, spec: ModelSpec | None = None,
                 vector: np.ndarray | None = None) -> list[ClaimCheck]:
    """:func:`check_claim` for each ``WatermarkClaimed`` of ``task``; ``fetch`` reads a claim
    document from the store (None when it cannot)."""
    return [check_claim(fetch(c.claim_cid), claim_cid=c.claim_cid, account=c.account,
                        committed=c.commitment, task=task, model_sha256=model_sha256,
                        spec=spec, vector=vector)
            for c in claims]


def task_facts(task_id: int, plan: PrivacyPlan | None,
               earned: Mapping[str, int]) -> TaskFacts:
    """:class:`TaskFacts` from the task document's privacy ``plan`` and what each account
    earned in the task (the ledger's credits: an account with none had no update accepted)."""
    bits = plan.watermark.bits if plan is not None and plan.watermark is not None else None
    return TaskFacts(task_id, bits,
                     frozenset(a.lower() for a, amount in earned.items() if amount > 0))
