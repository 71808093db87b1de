"""Named model architectures, their specs, and the flat parameter vector agents exchange.

A task fixes its model with a :class:`ModelSpec`: an architecture name from
:data:`ARCHITECTURES` plus the input shape, the number of classes and the hidden sizes. The
spec is a small JSON document (stored on IPFS as the task's spec) and is validated on load,
so a spec that the named architecture cannot be built from never reaches training.

Architectures (all classifiers; their output is ``num_classes`` logits):

* ``"mlp"``    — flatten → (linear → ReLU) per hidden width → linear. Default hidden ``(64,)``.
* ``"mlp_tanh"`` — the same with tanh in place of ReLU: a bounded ("tempered sigmoid")
  activation, which Papernot et al. (AAAI 2021) found loses less under DP-SGD's clipping
  and noise. Default hidden ``(64,)``; the same parameters as ``"mlp"``. At the DP
  benchmark's rate it did not here (rule R59); at a task's default rate it was more
  accurate but banned one honest client more and one attacker fewer (rule R60;
  docs/privacy-dp.md). No CLI offers it;
  ``benchmarks.privacy_dp --model mlp_tanh`` reruns both rules.
* ``"cnn"``    — input ``(C, H, W)``; (3×3 conv, padding 1 → ReLU) per channel count in
  ``hidden`` → 2×2 max-pool → flatten → linear. Default hidden ``(16, 32)``.
* ``"logreg"`` — flatten → linear (multinomial logistic regression); ``hidden`` is empty.

Parameters travel as one flat float32 vector: the model's parameters in
``named_parameters()`` order, each flattened row-major (the layout of torch's
``parameters_to_vector``). :func:`param_layout` names every slice. None of the architectures
has buffers (no batch norm), so the vector is the whole model state.

The layers, initialisation and vector conversion are torch's; only the choice of layers and
the spec validation are written here.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from fl_agent.errors import ConfigError

ArchitectureName = Literal["mlp", "mlp_tanh", "cnn", "logreg"]

#: The architectures a spec may name.
ARCHITECTURES: tuple[str, ...] = ("mlp", "mlp_tanh", "cnn", "logreg")
#: The architectures whose ``hidden`` is their hidden layers' widths.
MLP_ARCHITECTURES: tuple[str, ...] = ("mlp", "mlp_tanh")

_DEFAULT_HIDDEN: dict[str, tuple[int, ...]] = {"mlp": (64,), "mlp_tanh": (64,),
                                                "cnn": (16, 32), "logreg": ()}

PositiveInt = Annotated[int, Field(strict=True, gt=0)]


class ModelSpec(BaseModel):
    """What model a task trains: architecture, input shape, classes, hidden sizes.

    ``hidden`` is the hidden layer widths of an ``"mlp"``, the conv channel counts of a
    ``"cnn"``, and empty for ``"logreg"``; left out, it takes the architecture's default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec_version: Literal[1] = 1
    name: ArchitectureName
    input_shape: tuple[PositiveInt, ...] = Field(min_length=1)
    num_classes: Annotated[int, Field(strict=True, ge=2)]
    hidden: tuple[PositiveInt, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _default_hidden(cls, data: Any) -> Any:
        if isinstance(data, dict) and "hidden" not in data and data.get("name") in _DEFAULT_HIDDEN:
            return {**data, "hidden": _DEFAULT_HIDDEN[data["name"]]}
        return data

    @model_validator(mode="after")
    def _check_architecture(self) -> ModelSpec:
        if self.name in MLP_ARCHITECTURES and not self.hidden:
            raise ValueError("an mlp needs at least one hidden width (use 'logreg' for none)")
        if self.name == "logreg" and self.hidden:
            raise ValueError(f"logreg has no hidden layers, got hidden={self.hidden}")
        if self.name == "cnn":
            if len(self.input_shape) != 3:
                raise ValueError(f"a cnn takes (channels, height, width), got {self.input_shape}")
            if min(self.input_shape[1:]) < 2:
                raise ValueError(f"a cnn needs height and width >= 2, got {self.input_shape}")
            if not self.hidden:
                raise ValueError("a cnn needs at least one conv channel count in hidden")
        return self

    def __init__(self, **fields: Any) -> None:
        """Validates ``fields``; raises :class:`ConfigError` with pydantic's reasons."""
        try:
            super().__init__(**fields)
        except ValidationError as err:
            raise ConfigError(f"invalid model spec: {err}") from err

    @classmethod
    def for_features(
        cls,
        name: str,
        feature_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] | None = None,
    ) -> ModelSpec:
        """The spec of architecture ``name`` for data of ``feature_shape`` (see ``Dataset``).

        ``mlp`` and ``logreg`` take the flattened features; ``cnn`` takes ``feature_shape``
        as ``(C, H, W)``, a 2-D ``(H, W)`` getting one channel.
        """
        shape = tuple(int(d) for d in feature_shape)
        if name == "cnn":
            input_shape = (1, *shape) if len(shape) == 2 else shape
        else:
            input_shape = (math.prod(shape),)
        fields: dict[str, Any] = {"name": name, "input_shape": input_shape,
                                  "num_classes": num_classes}
        if hidden is not None:
            fields["hidden"] = tuple(hidden)
        return cls(**fields)

    @property
    def num_features(self) -> int:
        """Values per example (the product of ``input_shape``)."""
        return math.prod(self.input_shape)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): equal specs give equal bytes and CIDs."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        """Parses and validates a spec document; raises :class:`ConfigError` if it is not one."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as err:
            raise ConfigError(f"invalid model spec document: {err}") from err

    def sha256(self) -> str:
        """Hex SHA-256 of :meth:`to_json`; weights files carry it to name their spec."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()


@dataclass(frozen=True)
class ParamSlot:
    """One parameter tensor's place in the flat vector: ``vector[offset:offset + size]``."""

    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _mlp(spec: ModelSpec) -> nn.Module:
    name, activation = ("tanh", nn.Tanh) if spec.name == "mlp_tanh" else ("relu", nn.ReLU)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = spec.num_features
    for i, hidden in enumerate(spec.hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, hidden)
        layers[f"{name}{i}"] = activation()
        width = hidden
    layers["out"] = nn.Linear(width, spec.num_classes)
    return nn.Sequential(layers)


def _cnn(spec: ModelSpec) -> nn.Module:
    channels, height, width = spec.input_shape
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, out_channels in enumerate(spec.hidden, start=1):
        layers[f"conv{i}"] = nn.Conv2d(channels, out_channels, kernel_size=3, padding=1)
        layers[f"relu{i}"] = nn.ReLU()
        channels = out_channels
    layers["pool"] = nn.MaxPool2d(2)
    layers["flatten"] = nn.Flatten()
    layers["out"] = nn.Linear(channels * (height // 2) * (width // 2), spec.num_classes)
    return nn.Sequential(layers)


def _logreg(spec: ModelSpec) -> nn.Module:
    return nn.Sequential(OrderedDict(flatten=nn.Flatten(),
                                     linear=nn.Linear(spec.num_features, spec.num_classes)))


_BUILDERS = {**dict.fromkeys(MLP_ARCHITECTURES, _mlp), "cnn": _cnn, "logreg": _logreg}


def check_seed(seed: int) -> int:
    """``seed`` if it is an integer in ``[0, 2**32)`` (what torch, numpy and sklearn accept)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def build_model(spec: ModelSpec, seed: int = 0) -> nn.Module:
    """A fresh model for ``spec`` with torch's default initialisation drawn from ``seed``.

    The global torch RNG is left as it was. The model takes ``(batch, *spec.input_shape)``.
    """
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        # the CPU generator alone: ``torch.manual_seed`` would also queue a CUDA seeding
        # with a stack trace on every call, which outlives the fork and costs a millisecond
        torch.default_generator.manual_seed(seed)
        return _BUILDERS[spec.name](spec)


@lru_cache(maxsize=64)
def param_layout(spec: ModelSpec) -> tuple[ParamSlot, ...]:
    """Every parameter tensor's name, shape and offset in the flat vector, in vector order."""
    with torch.device("meta"):
        model = _BUILDERS[spec.name](spec)
    slots, offset = [], 0
    for name, param in model.named_parameters():
        slot = ParamSlot(name=name, shape=tuple(param.shape), offset=offset)
        slots.append(slot)
        offset += slot.size
    return tuple(slots)


def input_layer(spec: ModelSpec) -> tuple[int, int, int] | None:
    """``(offset, units, features)`` of the dense weight that reads the raw input features
    (``fc1`` of an ``"mlp"``, the only layer of a ``"logreg"``): the row-major
    ``units x features`` matrix at ``vector[offset:offset + units * features]``, one column
    per input feature. ``None`` for a ``"cnn"``, whose first layer is a convolution and has
    no column per feature."""
    first = param_layout(spec)[0]
    if len(first.shape) != 2 or first.shape[1] != spec.num_features:
        return None
    return first.offset, first.shape[0], first.shape[1]


def param_count(spec: ModelSpec) -> int:
    """Length of the flat parameter vector of ``spec``."""
    last = param_layout(spec)[-1]
    return last.offset + last.size


def params_to_vector(model: nn.Module) -> np.ndarray:
    """The model's parameters as one new float32 vector (layout in the module docstring)."""
    with torch.no_grad():
        vector = nn.utils.parameters_to_vector(model.parameters())
    return vector.detach().to(torch.float32).numpy().copy()


def check_vector(vector: np.ndarray, expected_length: int) -> np.ndarray:
    """``vector`` as a float32 1-D array, or :class:`ConfigError` if its shape or values are off."""
    array = np.asarray(vector)
    if array.ndim != 1 or array.shape[0] != expected_length:
        raise ConfigError(f"parameter vector must have shape ({expected_length},), "
                          f"got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ConfigError(f"parameter vector must be floating point, got {array.dtype}")
    if not np.all(np.isfinite(array)):
        raise ConfigError("parameter vector contains NaN or infinite values")
    return array.astype(np.float32, copy=False)


def finite_vector(value: Any, name: str,
                  nonfinite: type[Exception] = ConfigError) -> np.ndarray:
    """``value`` as a non-empty float64 1-D array: :class:`ConfigError` if it is not one,
    ``nonfinite`` (a module's own error) if it holds NaN or infinite values."""
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be a numeric vector: {err}") from err
    if vector.ndim != 1 or vector.size == 0:
        raise ConfigError(f"{name} must be a non-empty 1-D vector, got shape {vector.shape}")
    if not np.all(np.isfinite(vector)):
        raise nonfinite(f"{name} contains NaN or infinite values")
    return vector


def vector_to_params(model: nn.Module, vector: np.ndarray) -> None:
    """Copies ``vector`` into ``model``'s parameters; its length must match exactly."""
    expected = sum(p.numel() for p in model.parameters())
    checked = check_vector(vector, expected)
    with torch.no_grad():
        nn.utils.vector_to_parameters(torch.from_numpy(checked.copy()), model.parameters())


def init_params(spec: ModelSpec, seed: int) -> np.ndarray:
    """The flat initial parameters of ``spec`` for ``seed`` (the same for a given torch version)."""
    return params_to_vector(build_model(spec, seed))


_TEMPLATES = threading.local()


def apply_model(spec: ModelSpec, vector: np.ndarray, inputs: torch.Tensor,
                batch: int | None = None) -> torch.Tensor:
    """The output of the model holding ``vector`` on ``inputs``, without gradients, in
    forward passes of at most ``batch`` inputs (all at once if None).

    No model is built: a template of ``spec`` (one per thread) runs with ``vector``'s
    slices as its parameters (``torch.func.functional_call``), so that scoring a round's
    thousands of coalitions costs their forward passes only."""
    flat = torch.from_numpy(np.array(check_vector(vector, param_count(spec))))
    params = {slot.name: flat[slot.offset:slot.offset + slot.size].view(slot.shape)
              for slot in param_layout(spec)}
    templates = _TEMPLATES.__dict__.setdefault("by_spec", {})
    if spec not in templates:
        templates[spec] = build_model(spec).eval()
    step = batch or max(1, inputs.shape[0])
    with torch.no_grad():
        chunks = [torch.func.functional_call(templates[spec], params, (inputs[i:i + step],))
                  for i in range(0, inputs.shape[0], step)]
    return torch.cat(chunks) if chunks else torch.empty(0, spec.num_classes)


def model_from_vector(spec: ModelSpec, vector: np.ndarray) -> nn.Module:
    """A model for ``spec`` holding ``vector``, to train. It is built without initialising
    its weights, which ``vector`` overwrites, unless it has buffers, which ``vector`` does
    not hold. (To evaluate a vector, :func:`apply_model` builds no model at all.)"""
    with torch.device("meta"):
        model = _BUILDERS[spec.name](spec)
    model = build_model(spec) if any(True for _ in model.buffers()) else model.to_empty(
        device="cpu")
    vector_to_params(model, vector)
    return model
