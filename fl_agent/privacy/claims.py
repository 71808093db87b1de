"""Ownership claims: a member reveals its watermark key for a finished model, and anyone checks
the claim, as pure computation.

A watermark key stays secret while the task runs (:mod:`fl_agent.privacy.watermark`): its
owner committed to it on chain when it joined. Once the task is complete, the owner may
*claim* the final model: ``fl-agent watermark claim`` verifies the model itself, stores a
:class:`WatermarkClaimDocument` (the key, the SHA-256 of the plaintext weights it verified,
and what it measured) and calls ``TaskLedger.claimWatermark`` with the document's CID, which
the contract accepts once per member, from members in good standing that committed a key.

What each reader can check (:func:`check_claim`):

* **everyone**, from the chain and the store alone: the document is well formed, names the
  account and task of the ``WatermarkClaimed`` event, its key hashes to the commitment made
  before the model existed, and it was verified against the model being sold (same SHA-256);
  the bits it reports are the claimant's word;
* **whoever can read the model** (its members, its buyers with the downloaded weights): the
  bits themselves, with :func:`fl_agent.privacy.watermark.verify`.

Revealing the key is the price of a public claim: whoever holds both key and model can try
to train the mark away. A claimant who would rather show the key to one arbiter than to
everyone uses ``fl-agent watermark verify`` in front of that arbiter instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
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

#: A check's outcome. ``verified``: re-verified on the model by this reader; ``committed``:
#: everything a reader without the model can check holds; ``rejected``: something does not.
Verdict = Literal["verified", "committed", "rejected"]


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
class ClaimCheck:
    """One claim as a reader sees it. ``problems`` lists what failed (empty when nothing
    did); ``reported`` is the claimant's word, ``rechecked`` this reader's own measurement
    (None without the model)."""

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
        return "verified" if self.rechecked is not None else "committed"

    @property
    def reported_p_value(self) -> float | None:
        if self.reported_matched is None or self.reported_bits is None:
            return None
        return false_match_probability(self.reported_matched, self.reported_bits)


def check_claim(raw: bytes | None, *, claim_cid: str, account: str, task_id: int,
                committed: bytes, model_sha256: bytes, spec: ModelSpec | None = None,
                vector: np.ndarray | None = None) -> ClaimCheck:
    """Checks the claim document ``raw`` (None: the store does not have it) that ``account``
    named in its ``WatermarkClaimed`` event for task ``task_id``, against its on-chain
    ``committed`` key hash and the sold model's plaintext ``model_sha256``; with the model's
    ``spec`` and weights ``vector``, re-verifies the bits too. Never raises on a bad claim:
    what is wrong is in ``problems``."""
    if raw is None:
        return ClaimCheck(account, claim_cid, ("the claim document is not in the store",))
    try:
        document = WatermarkClaimDocument.from_json(raw)
    except ConfigError as err:
        return ClaimCheck(account, claim_cid, (str(err),))
    problems = []
    if document.account.lower() != account.lower() or document.task != task_id:
        problems.append(f"the document is {document.account}'s claim on task {document.task}, "
                        f"not {account}'s on task {task_id}")
    key = document.watermark_key()
    if commitment(key, account, task_id) != committed:
        problems.append("the revealed key is not the one committed on chain")
    if document.model_sha256 != model_sha256.hex():
        problems.append("the claim was verified on other weights than the model sold")
    if not (0 <= document.matched <= document.bits == key.bits):
        problems.append(f"reports {document.matched} of {document.bits} bits for a "
                        f"{key.bits}-bit key")
    rechecked = None
    if spec is not None and vector is not None and not problems:
        from fl_agent.privacy.watermark import verify  # torch: only for readers of the model

        rechecked = verify(spec, vector, key)
        if not rechecked.verified:
            problems.append(f"the model carries {rechecked.matched} of {rechecked.bits} "
                            "bits: not verified")
    elif not problems and not passes(document.matched, document.bits):
        problems.append(f"reports only {document.matched} of {document.bits} bits")
    return ClaimCheck(account, claim_cid, tuple(problems), document.matched, document.bits,
                      rechecked)



def check_claims(claims: Iterable[WatermarkClaim], fetch: Callable[[str], bytes | None], *,
                 model_sha256: bytes, spec: ModelSpec | None = None,
                 vector: np.ndarray | None = None) -> list[ClaimCheck]:
    """:func:`check_claim` for each ``WatermarkClaimed`` of a task; ``fetch`` reads a claim
    document from the store (None when it cannot)."""
    return [check_claim(fetch(c.claim_cid), claim_cid=c.claim_cid, account=c.account,
                        task_id=c.task_id, committed=c.commitment, model_sha256=model_sha256,
                        spec=spec, vector=vector)
            for c in claims]
