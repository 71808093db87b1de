"""Ownership watermarks in the weights of a federated model, after FedIPR (Li et al., "FedIPR:
Ownership verification for federated deep neural network models"), as pure computation.

Each participant draws a secret :class:`WatermarkKey` (32 random bytes and a bit count), posts
its :func:`commitment` on chain when it joins a task, and trains with :func:`embed_hook` as the
``gradient_hook`` of :func:`~fl_agent.learning.training.train_local`. Later, on any copy of
the model, :func:`verify` reveals whether the key's signature is in the weights, and how
unlikely that is by chance.

Everything derives from the key, deterministically:

* **where** -- the *carrier*, one weight tensor of the model spec (:func:`carrier`): the
  layer the key names, or by default the largest weight tensor with two or more dimensions
  (first on ties): ``fc1.weight`` of the digits MLP (64 x 64), the only weight of a
  ``logreg``, the output layer of the digits CNN. The largest tensor because twenty
  participants share it: more weights carry more bits for the same change to each weight
  (on the MLP's 640-weight output layer at most 1 key in 20 verified; docs/privacy-watermark.md).
* **the signature** ``b in {-1, +1}^bits``: the bits of ``HKDF-SHA256(key, info="signature")``.
* **the projection** ``E`` (``bits x m``, ``m`` the carrier's size): standard normal entries
  divided by ``sqrt(m)`` (rows of length ~1), from a numpy ``Generator`` (PCG64) seeded with
  ``HKDF-SHA256(key, info="projection|<carrier name>|<m>")``. numpy does not promise the same
  ``Generator`` stream across versions, so a key verifies with the numpy the project pins.

Embedding adds ``strength * sum_i max(0, t_i - b_i (E w)_i)`` to the training loss of the
carrier's weights ``w`` (the hinge of FedIPR's sign loss, whose target ``t_i`` is the
margin); :func:`embed_hook` adds its gradient, ``-strength * sum_{i: b_i (E w)_i < t_i}
b_i E_i``, to the carrier's ``grad`` after each backward pass. Bit ``i`` is read as
``sign((E w)_i)``. With a ``reach`` (the default), a bit that the global model the round
began from holds short of the margin gets the target ``max(margin, start_i + reach)``: the
participant moves it that far past the global model's value, so that its share of the
average moves the global model.

What it costs and where it stops (measured by ``benchmarks.privacy_watermark``,
docs/privacy-watermark.md): FedAvg averages each participant's mark by its share of the
weight. With FedIPR's hinge alone (``reach=None``), a participant with a small share (a
few per cent of the data, out of twenty) did not get its mark into the global model; the
reach fixes most of that, up to what FairFL's norm screen lets an honest update be (on
the evaluation seeds, the keys that still fail belong to clients with 2.0-3.0 % of the
data; pushing further for small shares verified more keys on the tuning seeds but cost
accuracy or blacklisted a small honest client, rule R43). A push that strong made an
update look like noise to FairFL's NOISE check (a direction no other update shares), which
a watermark task runs without (:meth:`fl_agent.learning.task_doc.TaskDocument.build`).
The mark is tied to weight positions: permuting hidden units (the same function) erases
it, and whoever learns the key can train it away.

Verification counts the bits that match. For a model that never saw the key, the signs of
``E w`` are independent fair coins (``E`` is Gaussian and independent of ``w``), so the
chance that such a model matches at least as many bits is the binomial tail
``P[X >= matched | bits, 1/2]`` (scipy's ``binom.sf``). The verdict is *verified* iff the
match rate is at least :data:`MATCH_RATE_MIN` (0.9) **and** that tail is below
:data:`ALPHA` (1e-6). The tail needs enough bits: 16 bits can never verify
(``2**-16 > 1e-6``), 32 bits need 30 matches, 40 (the default) 36.

The commitment (``keccak256(abi.encode(DOMAIN, account, taskId, key, bits, layer))``) binds
the key to one account and one task; the secret stays hidden until the owner reveals it to
an arbiter. Recorded before the model exists, it also stops a claimant from trying many keys
on a finished model until one happens to match: the tail is the chance for *one* key fixed
in advance.

Key files are small JSON documents (``{"version": 1, "key": "<64 hex>", "bits": 40}`` and,
optionally, ``"layer"``), never pickles; a malformed one raises :class:`ConfigError`.

HKDF is ``cryptography``'s, keccak and ABI encoding are eth_utils' and eth_abi's, the tail is
scipy's and the hinge's gradient is computed with torch. Written here by hand are only the
derivation and the hinge, which no library offers in this form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from torch import nn

from fl_agent.errors import ConfigError
from fl_agent.learning.models import ModelSpec, ParamSlot, check_vector, param_count, param_layout
from fl_agent.learning.training import GradientHook
from fl_agent.privacy.watermark_key import (
    ALPHA,
    DEFAULT_BITS,
    DOMAIN,
    KEY_BYTES,
    MATCH_RATE_MIN,
    MAX_BITS,
    MIN_BITS,
    VERSION,
    WatermarkKey,
    WatermarkResult,
    commitment,
    false_match_probability,
    passes,
)

__all__ = ["ALPHA", "DEFAULT_BITS", "DEFAULT_MARGIN", "DEFAULT_REACH", "DEFAULT_STRENGTH",
           "DOMAIN", "KEY_BYTES", "MATCH_RATE_MIN", "MAX_BITS", "MIN_BITS", "VERSION", "Watermark",
           "WatermarkKey", "WatermarkResult", "carrier", "commitment", "derive", "embed_hook",
           "false_match_probability", "passes", "read_bits", "verify"]

#: HKDF salt (a new scheme VERSION changes it) of the derivation.
SALT = b"fairfl/watermark/v1"
#: The hinge's margin gamma on ``b_i (E w)_i`` (E's rows have length ~1, so it is a distance
#: in weight space; a weight of the digits MLP's fc1 is ~0.07), its weight lambda in the
#: loss, and the *reach* (:func:`embed_hook`): how far past its margin in the round's global
#: model a participant pushes a bit that the global model holds short of gamma. Chosen on
#: the tuning seeds 1-3, and checked under attack on seeds 1-5 (docs/privacy-watermark.md).
#: Without a reach (FedIPR's hinge, the default before 2026-12-05, with gamma = 0.1) a bit
#: stops once the participant's own copy holds it, and FedAvg dilutes a small participant's
#: mark until it does not verify; a reach of 0.5 verified as many keys, but FairFL's norm
#: screen then rejected a small honest client often enough to blacklist it. lambda = 2 with
#: the task's lr of 0.05 moves a bit 0.1 a step, and the last step only as far as its target.
DEFAULT_MARGIN = 0.05
DEFAULT_STRENGTH = 2.0
DEFAULT_REACH: float | None = 0.25


def carrier(spec: ModelSpec, layer: str | None = None) -> tuple[int, ParamSlot]:
    """The parameter that carries the mark (its index in ``model.parameters()`` and its slot
    in the flat vector): the one named ``layer``, or the largest weight tensor with two or more
    dimensions, the first on ties."""
    layout = param_layout(spec)
    if layer is not None:
        for index, slot in enumerate(layout):
            if slot.name == layer:
                return index, slot
        raise ConfigError(f"{spec.name} has no parameter {layer!r}; it has "
                          f"{', '.join(s.name for s in layout)}")
    weights = [(index, slot) for index, slot in enumerate(layout) if len(slot.shape) >= 2]
    return max(weights, key=lambda pair: (pair[1].size, -pair[0]))


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=SALT, info=info).derive(secret)


@dataclass(frozen=True, eq=False)
class Watermark:
    """What a key means for one spec: the carrier and the secret ``projection`` (``bits x
    slot.size``, float32) and ``signature`` (``bits`` values in {-1, +1}, int8)."""

    index: int
    slot: ParamSlot
    projection: np.ndarray
    signature: np.ndarray

    def project(self, vector: np.ndarray) -> np.ndarray:
        """``E w`` for the carrier's weights ``w`` in the flat ``vector`` (float64)."""
        weights = np.asarray(vector, dtype=np.float64)[self.slot.offset:
                                                         self.slot.offset + self.slot.size]
        return self.projection.astype(np.float64) @ weights


def derive(spec: ModelSpec, key: WatermarkKey) -> Watermark:
    """The carrier, projection and signature ``key`` stands for in ``spec`` (deterministic)."""
    index, slot = carrier(spec, key.layer)
    raw = _hkdf(key.secret, b"signature", math.ceil(key.bits / 8))
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))[:key.bits]
    signature = np.where(bits == 1, 1, -1).astype(np.int8)
    seed = _hkdf(key.secret, f"projection|{slot.name}|{slot.size}".encode(), 32)
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
    projection = (rng.standard_normal((key.bits, slot.size)) / math.sqrt(slot.size))
    return Watermark(index, slot, projection.astype(np.float32), signature)


def embed_hook(spec: ModelSpec, key: WatermarkKey, strength: float = DEFAULT_STRENGTH,
               margin: float = DEFAULT_MARGIN, reach: float | None = DEFAULT_REACH, *,
               lr: float | None = None) -> GradientHook:
    """A ``gradient_hook`` for :func:`~fl_agent.learning.training.train_local` that adds the
    gradient of ``strength * sum_i max(0, t_i - b_i (E w)_i)`` to the carrier's grad.

    Without a ``reach``, the target ``t_i`` is ``margin`` (FedIPR's hinge): a bit is pushed
    until the weights being trained hold it. With one, the target of a bit whose margin in
    the *starting* weights (step 0: the global model the round began from) is below
    ``margin`` is ``max(margin, start_i + reach)``: the participant moves it ``reach`` past
    where the global model has it, so that its share of the average moves the global model,
    however small that share (FedAvg would otherwise dilute the mark of a participant with
    little data below verification); bits the global model already holds keep the target
    ``margin``. The targets are fixed at step 0 of each local training. Given the
    optimizer's learning rate ``lr`` (plain SGD), each bit's push is cut to what would bring
    it to its target in one step, so a bit does not overshoot by more than the rows of ``E``
    (nearly, not exactly, orthogonal) and the task's own loss move it: the move per round is
    then about the reach whatever the task's steps or learning rate. With momentum the
    optimizer's velocity can still carry a bit past its target; the task default has
    none."""
    for name, value in (("strength", strength), ("margin", margin), ("reach", reach),
                        ("lr", lr)):
        if name in ("reach", "lr") and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 < value < math.inf:
            raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    mark = derive(spec, key)
    projection = torch.from_numpy(mark.projection)
    signed = torch.from_numpy(mark.signature.astype(np.float32))
    shape = mark.slot.shape
    targets = torch.full((key.bits,), float(margin))

    def hook(step: int, parameters: Sequence[nn.Parameter]) -> None:
        weight = parameters[mark.index]
        if tuple(weight.shape) != shape:
            raise ConfigError(f"the watermark's carrier {mark.slot.name} has shape {shape}, "
                              f"the model's parameter {mark.index} {tuple(weight.shape)}")
        with torch.no_grad():
            margins = signed * (projection @ weight.detach().reshape(-1))
            if step == 0 and reach is not None:
                targets.copy_(torch.where(margins < margin,
                                          torch.clamp(margins + reach, min=margin),
                                          torch.full_like(margins, margin)))
            force = (margins < targets).float()
            if lr is not None:  # no more than brings the bit to its target this step
                force = torch.clamp((targets - margins) / (lr * strength), min=0.0, max=1.0)
            push = ((signed * force) @ projection).reshape(shape)
            if weight.grad is None:  # a model that left this weight out of its loss
                weight.grad = torch.zeros_like(weight)
            weight.grad.add_(push, alpha=-float(strength))

    return hook


def read_bits(spec: ModelSpec, vector: np.ndarray, key: WatermarkKey) -> np.ndarray:
    """The signs of ``E w`` in ``vector`` (int8; 0 where the projection is exactly 0)."""
    vector = check_vector(vector, param_count(spec))
    return np.sign(derive(spec, key).project(vector)).astype(np.int8)


def verify(spec: ModelSpec, vector: np.ndarray, key: WatermarkKey, *,
           alpha: float = ALPHA, min_match_rate: float = MATCH_RATE_MIN) -> WatermarkResult:
    """Whether ``key``'s signature is in the model ``vector`` (see the module docstring)."""
    if not 0 < alpha < 1 or not 0 < min_match_rate <= 1:
        raise ConfigError(f"alpha must lie in (0, 1) and min_match_rate in (0, 1], got "
                          f"{alpha!r}, {min_match_rate!r}")
    mark = derive(spec, key)
    read = np.sign(mark.project(check_vector(vector, param_count(spec))))
    matched = int(np.sum(read == mark.signature))
    return WatermarkResult(key.bits, matched, matched / key.bits,
                           false_match_probability(matched, key.bits),
                           passes(matched, key.bits, alpha=alpha,
                                  min_match_rate=min_match_rate))
