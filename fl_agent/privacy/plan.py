"""A task's privacy plan (part of the task document) and the public receipt of one update.

The plan says which protections every participant and the aggregator apply, with their
parameters; :meth:`PrivacyPlan.mode` is the bitmask recorded on chain (``trainingMode``), so
the ledger and the document cannot disagree (``fl-agent task create`` derives one from the
other). Modes combine: ``dp+prune`` trains with DP-SGD, then sends a sparse update.

* ``dp`` — :class:`DPPlan`: example-level DP-SGD at each participant (``level="example"``,
  :func:`fl_agent.privacy.dp.train_local_dp`) with a per-participant budget of
  ``(epsilon, delta)`` over the whole task, or participant-level DP-FedAvg at the aggregator
  (``level="participant"``, :func:`fl_agent.privacy.dp.dp_fedavg`).
* ``prune`` — :class:`PrunePlan`: top-k sparsification of the update with error feedback, or
  magnitude pruning of the local model (:mod:`fl_agent.privacy.sparse`).
* ``he`` — :class:`HEPlan`: CKKS ciphertexts under the key holder's public context
  (:mod:`fl_agent.privacy.he`).
* ``watermark`` — :class:`WatermarkPlan`: every participant embeds its own FedIPR-style
  signature (:mod:`fl_agent.privacy.watermark`) and commits to its key at join.

:class:`PrivacyReceipt` is what a participant publishes (unsealed, in the store) with each
update and names in ``submitUpdate``'s ``privacyCid``: the protections it applied to that
update and, under DP, the ε it has spent so far, so that anyone can audit what each update
cost in privacy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fl_agent.chain.records import TrainingMode
from fl_agent.documents import Document

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class DPPlan(BaseModel):
    """Differential privacy. ``epsilon`` and ``delta`` bound what the whole task may cost
    each participant (``level="example"``) or each participant's presence in the model
    (``level="participant"``)."""

    model_config = _FROZEN

    level: Literal["example", "participant"] = "example"
    epsilon: float = Field(gt=0, le=1_000)
    delta: float = Field(1e-5, gt=0, lt=1)
    #: Opacus's PRV accountant by default: an upper bound on ε like RDP's, but tighter, so the
    #: same budget needs about 6 % less noise (σ 3.71 against 3.94 at ε = 8, q = 0.3, 400
    #: steps). On the tuning seeds of ``benchmarks.privacy_dp`` it gave FedAvg 0.3 points at
    #: ε = 8 and 1.1 at ε = 4, by the medians (docs/privacy-dp.md). It costs about 3 s of
    #: CPU to calibrate and 0.3 s per round to check the budget, against 0.9 and 0.06 s by
    #: RDP.
    accountant: Literal["rdp", "prv"] = "prv"
    #: Per-example gradient clip (DP-SGD) or per-update clip (DP-FedAvg), L2.
    clip: float = Field(1.0, gt=0)
    #: Example level, plain dp only: the aggregator refuses an update that its receipt does
    #: not describe (a noise multiplier that leaves the budget unspent, or a length outside
    #: the band DP-SGD with it gives: :func:`fl_agent.privacy.receipts.check_update_length`).
    #: Off by default: on rule R44's tuning runs it refused no honest update and every
    #: unsized scaled flip, but lost more than the 0.5 points the rule allowed in five
    #: cells (up to 3.9, against scaled updates the rule would have clipped into useful
    #: ones; docs/privacy-dp.md).
    length_check: bool = False


class PrunePlan(BaseModel):
    """Sparse updates: ``ratio`` is the fraction of the update's entries DROPPED."""

    model_config = _FROZEN

    ratio: float = Field(gt=0, lt=1)
    method: Literal["topk", "magnitude"] = "topk"


def attestation_message(fingerprint: str, key_holder: str) -> str:
    """What a key holder signs (EIP-191) to say it made the key pair of a public context."""
    return (f"FairFL CKKS key pair\nI made the key pair of the public context {fingerprint} "
            f"on my own machine and keep its secret key.\nKey holder: {key_holder.lower()}")


class HEPlan(BaseModel):
    """Homomorphic aggregation: the public CKKS context (no secret key) is at
    ``context_cid``; its SHA-256 ``fingerprint`` is what every ciphertext carries; the key
    holder's account decrypts the scalars of the robust rule and the aggregate.
    ``attestation``, when the key holder made the pair on its own machine (``fl-agent
    keyholder --new-context``), is its signature of :func:`attestation_message`: a document
    whose attestation another account signed does not parse. A pair the creator made has
    none."""

    model_config = _FROZEN

    context_cid: str = Field(min_length=1)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    key_holder: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    attestation: str | None = Field(None, pattern=r"^0x[0-9a-f]{130}$")

    @model_validator(mode="after")
    def _attested_by_the_key_holder(self) -> HEPlan:
        if self.attestation is not None:
            from eth_account import Account
            from eth_account.messages import encode_defunct
            from eth_keys.exceptions import BadSignature

            message = encode_defunct(text=attestation_message(self.fingerprint,
                                                              self.key_holder))
            try:
                signer = Account.recover_message(message, signature=self.attestation)
            except (BadSignature, ValueError) as err:
                raise ValueError(f"the key holder's attestation is not a signature: {err}") \
                    from err
            if signer.lower() != self.key_holder.lower():
                raise ValueError(f"the attestation of context {self.fingerprint[:16]}... was "
                                 f"signed by {signer}, not by the key holder {self.key_holder}")
        return self


class WatermarkPlan(BaseModel):
    """Ownership watermarks: each participant embeds ``bits`` signature bits, pushed with
    ``strength`` to ``margin`` and, with a ``reach``, that far past the global model's margin
    (see :func:`fl_agent.privacy.watermark.embed_hook`). A plan written before 2026-12-05
    names no margin or reach: it meant FedIPR's hinge to 0.1, which the defaults keep."""

    model_config = _FROZEN

    bits: int = Field(ge=8, le=4096)
    strength: float = Field(gt=0)
    margin: float = Field(0.1, gt=0)
    reach: float | None = Field(None, gt=0)


class PrivacyPlan(BaseModel):
    """Which protections the task applies; none of them is plain mode."""

    model_config = _FROZEN

    dp: DPPlan | None = None
    prune: PrunePlan | None = None
    he: HEPlan | None = None
    watermark: WatermarkPlan | None = None

    @model_validator(mode="after")
    def _compatible(self) -> PrivacyPlan:
        if self.he is not None and self.dp is not None and self.dp.level == "participant":
            raise ValueError("participant-level DP needs the aggregator to clip each update in "
                             "the clear; with he it cannot: use dp level 'example'")
        if self.he is not None and self.prune is not None:
            raise ValueError("a ciphertext is as large as its dense vector: prune and he do "
                             "not combine")
        return self

    def mode(self) -> TrainingMode:
        """The ``trainingMode`` bitmask recorded on chain for this plan."""
        mode = TrainingMode.PLAIN
        for flag, part in ((TrainingMode.DP, self.dp), (TrainingMode.PRUNING, self.prune),
                           (TrainingMode.HOMOMORPHIC, self.he),
                           (TrainingMode.WATERMARK, self.watermark)):
            if part is not None:
                mode |= flag
        return mode


class PrivacyReceipt(Document):
    """The public record of one update's protections (see the module docstring)."""

    KIND = "FairFL privacy receipt"

    format: Literal["fairfl-privacy-receipt/1"] = "fairfl-privacy-receipt/1"
    task: int = Field(ge=1)
    round: int = Field(ge=1)
    participant: str
    mode: str
    #: DP: ε spent by this participant so far (this update included), the δ it holds for,
    #: the accountant, the noise multiplier, its sample rate and the DP-SGD steps taken so
    #: far at that noise and rate (its budget's last entry).
    epsilon_spent: float | None = None
    delta: float | None = None
    accountant: str | None = None
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    #: Prune: entries sent of the model's ``length``.
    kept: int | None = None
    length: int | None = None
    #: Bytes of the update as uploaded (before sealing).
    update_bytes: int = Field(ge=0)
    #: HE: the fingerprint of the context the update is encrypted under.
    he_fingerprint: str | None = None
    #: Watermark: the commitment made on chain at join (hex).
    watermark_commitment: str | None = None


def build_plan(mode: TrainingMode, *, epsilon: float | None = None, delta: float = 1e-5,
               dp_level: str = "example", prune_ratio: float | None = None,
               prune_method: str = "topk", he: HEPlan | None = None,
               dp_length_check: bool = False) -> PrivacyPlan | None:
    """The plan for ``mode`` (None for plain): ``epsilon`` is needed with dp,
    ``prune_ratio`` with pruning and ``he`` (the key holder's context) with homomorphic; the
    watermark's bits, strength, margin and reach are the defaults chosen on tuning seeds
    (:mod:`fl_agent.privacy.watermark`); ``dp_length_check`` sets :attr:`DPPlan.length_check`
    (plain example-level dp only). Raises :class:`ConfigError` for what is missing."""
    from pydantic import ValidationError

    from fl_agent.errors import ConfigError

    if dp_length_check and TrainingMode.DP not in mode:
        raise ConfigError("--dp-length-check is for dp tasks: give --mode dp")
    parts: dict[str, object] = {}
    try:
        if TrainingMode.DP in mode:
            if epsilon is None:
                raise ConfigError("dp mode needs a privacy budget: give --epsilon (and "
                                  "--delta, default 1e-5)")
            if dp_length_check and (dp_level != "example" or mode != TrainingMode.DP):
                raise ConfigError(
                    "--dp-length-check holds each DP-SGD update to the length its receipt "
                    "allows: it needs plain example-level dp (--mode dp, --dp-level example); "
                    "with pruning, he or a watermark the band does not describe the update")
            parts["dp"] = DPPlan(level=dp_level, epsilon=epsilon, delta=delta,
                                 length_check=dp_length_check)
        if TrainingMode.PRUNING in mode:
            if prune_ratio is None:
                raise ConfigError("pruning needs --prune-ratio, the fraction of each update "
                                  "dropped (e.g. 0.9)")
            parts["prune"] = PrunePlan(ratio=prune_ratio, method=prune_method)
        if TrainingMode.HOMOMORPHIC in mode:
            if he is None:
                raise ConfigError(
                    "homomorphic aggregation (he) needs the key holder's CKKS context: "
                    "`fl-agent task create --mode he` and `fl-agent simulate --mode he` make "
                    "one (fl_agent.agents.keyholder.create_context)")
            parts["he"] = he
        if TrainingMode.WATERMARK in mode:
            from fl_agent.privacy.watermark import (
                DEFAULT_BITS,
                DEFAULT_MARGIN,
                DEFAULT_REACH,
                DEFAULT_STRENGTH,
            )

            parts["watermark"] = WatermarkPlan(bits=DEFAULT_BITS, strength=DEFAULT_STRENGTH,
                                               margin=DEFAULT_MARGIN, reach=DEFAULT_REACH)
        return PrivacyPlan(**parts) if parts else None
    except ValidationError as err:
        raise ConfigError(f"invalid privacy settings: {err}") from err
