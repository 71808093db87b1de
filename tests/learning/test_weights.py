"""Weights on the wire: exact round trips, and every kind of bad input refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from safetensors import safe_open
from safetensors.numpy import save

from fl_agent.errors import ConfigError, FairFLError
from fl_agent.learning.models import (
    ModelSpec,
    build_model,
    init_params,
    param_count,
    param_layout,
)
from fl_agent.learning.weights import (
    WeightsError,
    decode_weights,
    encode_weights,
    max_weights_bytes,
)

MLP = ModelSpec(name="mlp", input_shape=(64,), num_classes=10, hidden=(32,))
CNN = ModelSpec(name="cnn", input_shape=(1, 8, 8), num_classes=10, hidden=(4,))
LOGREG = ModelSpec(name="logreg", input_shape=(3,), num_classes=2)


def metadata(spec: ModelSpec, **changes: object) -> dict[str, str]:
    """The wire format's metadata, written out independently of the encoder."""
    entry = {"format": "fairfl-weights/1", "model": spec.name,
             "spec": json.loads(spec.to_json()), "spec_sha256": spec.sha256(), **changes}
    return {"fairfl": json.dumps(entry, sort_keys=True, separators=(",", ":"))}


def tensors(spec: ModelSpec, seed: int = 0) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in build_model(spec, seed).state_dict().items()}


def craft(spec: ModelSpec, parts: dict[str, np.ndarray], meta: dict[str, str] | None = None
          ) -> bytes:
    return save(parts, metadata=metadata(spec) if meta is None else meta)


@pytest.mark.parametrize("spec", [MLP, CNN, LOGREG], ids=lambda s: s.name)
def test_round_trip_is_exact(spec):
    vector = init_params(spec, seed=5)
    data = encode_weights(spec, vector)
    decoded = decode_weights(data, spec)
    assert decoded.dtype == np.float32
    assert decoded.tobytes() == vector.tobytes()


def test_state_dict_and_vector_encode_to_the_same_bytes():
    model = build_model(MLP, seed=1)
    from_state = encode_weights(MLP, model.state_dict())
    assert from_state == encode_weights(MLP, init_params(MLP, seed=1))
    assert from_state == encode_weights(MLP, tensors(MLP, seed=1))
    assert from_state == craft(MLP, tensors(MLP, seed=1))


def test_encoding_is_deterministic():
    vector = init_params(MLP, seed=1)
    first = encode_weights(MLP, vector)
    assert all(encode_weights(MLP, vector.copy()) == first for _ in range(20))


def test_float64_vectors_are_stored_as_float32():
    vector = init_params(LOGREG, seed=0)
    assert decode_weights(encode_weights(LOGREG, vector.astype(np.float64)), LOGREG).tobytes() \
        == vector.tobytes()


def test_metadata_names_the_spec(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(encode_weights(MLP, init_params(MLP, 0)))
    with safe_open(path, framework="np") as f:
        assert f.metadata() == metadata(MLP)
        assert sorted(f.keys()) == sorted(slot.name for slot in param_layout(MLP))


@settings(max_examples=50, deadline=None, derandomize=True)
@given(arrays(np.float32, param_count(LOGREG),
              elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_any_finite_vector_round_trips(vector):
    assert decode_weights(encode_weights(LOGREG, vector), LOGREG).tobytes() == vector.tobytes()


def _valid() -> bytes:
    return encode_weights(MLP, init_params(MLP, 0))


def _with(**changes: np.ndarray | None) -> bytes:
    parts = tensors(MLP)
    for name, value in changes.items():
        name = name.replace("__", ".")
        if value is None:
            del parts[name]
        else:
            parts[name] = value
    return craft(MLP, parts)


def _nan() -> np.ndarray:
    bias = tensors(MLP)["out.bias"]
    bias[3] = np.nan
    return bias


def _inf() -> np.ndarray:
    weight = tensors(MLP)["fc1.weight"]
    weight[0, 0] = -np.inf
    return weight


BAD = {
    "empty": lambda: b"",
    "random bytes": lambda: np.random.default_rng(0).bytes(2000),
    "truncated": lambda: _valid()[:-1],
    "trailing bytes": lambda: _valid() + b"\x00",
    "header only": lambda: _valid()[:200],
    "nan": lambda: _with(out__bias=_nan()),
    "inf": lambda: _with(fc1__weight=_inf()),
    "wrong shape": lambda: _with(fc1__weight=tensors(MLP)["fc1.weight"].reshape(-1)),
    "transposed": lambda: _with(out__weight=tensors(MLP)["out.weight"].T.copy()),
    "missing tensor": lambda: _with(out__bias=None),
    "extra tensor": lambda: _with(extra=np.zeros(1, np.float32)),
    "float64": lambda: _with(out__bias=tensors(MLP)["out.bias"].astype(np.float64)),
    "float16": lambda: _with(out__bias=tensors(MLP)["out.bias"].astype(np.float16)),
    "int32": lambda: _with(out__bias=np.zeros(10, np.int32)),
    "no metadata": lambda: save(tensors(MLP)),
    "other spec": lambda: encode_weights(MLP.model_copy(update={"hidden": (16,)}),
                                         init_params(MLP.model_copy(update={"hidden": (16,)}), 0)),
    "same layout, other spec": lambda: craft(MLP, tensors(MLP), metadata(
        ModelSpec(name="mlp", input_shape=(8, 8), num_classes=10, hidden=(32,)))),
    "tampered hash": lambda: craft(MLP, tensors(MLP), metadata(MLP, spec_sha256="00" * 32)),
    "other format": lambda: craft(MLP, tensors(MLP), metadata(MLP, format="fairfl-weights/2")),
    "metadata not json": lambda: craft(MLP, tensors(MLP), {"fairfl": "{"}),
    "metadata not object": lambda: craft(MLP, tensors(MLP), {"fairfl": "[]"}),
    # json.loads would raise RecursionError here, or crash under a raised recursion limit.
    "metadata nested deep": lambda: craft(MLP, tensors(MLP), {"fairfl": "[" * 100_000}),
    "oversized": lambda: _with(extra=np.zeros(max_weights_bytes(MLP) // 4, np.float32)),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_weights_raise_weights_error(case):
    with pytest.raises(WeightsError) as caught:
        decode_weights(BAD[case](), MLP)
    assert isinstance(caught.value, FairFLError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize("case, message", [
    ("truncated", "not a safetensors document"),
    ("nan", "'out.bias' contains NaN"),
    ("inf", "'fc1.weight' contains NaN or infinite"),
    ("wrong shape", r"'fc1.weight' must have shape \(32, 64\)"),
    ("missing tensor", r"missing tensors \['out.bias'\]"),
    ("extra tensor", r"unexpected tensors \['extra'\]"),
    ("float64", "'out.bias' must be F32, got F64"),
    ("no metadata", "not FairFL weights"),
    ("same layout, other spec", "weights were made for spec"),
    ("oversized", "more than the limit"),
])
def test_errors_say_what_is_wrong(case, message):
    with pytest.raises(WeightsError, match=message):
        decode_weights(BAD[case](), MLP)


def test_valid_weights_pass_the_same_checks():
    assert decode_weights(_with(), MLP).tobytes() == init_params(MLP, 0).tobytes()


def test_explicit_size_limit():
    data = _valid()
    assert decode_weights(data, MLP, max_bytes=len(data)).size == param_count(MLP)
    with pytest.raises(WeightsError, match="more than the limit"):
        decode_weights(data, MLP, max_bytes=len(data) - 1)
    with pytest.raises(ConfigError):
        decode_weights(data, MLP, max_bytes=0)


def test_non_bytes_are_refused():
    with pytest.raises(WeightsError, match="must be bytes"):
        decode_weights("weights", MLP)  # type: ignore[arg-type]
    assert decode_weights(bytearray(_valid()), MLP).size == param_count(MLP)


@pytest.mark.parametrize("bad, message", [
    (np.zeros(param_count(MLP) - 1, np.float32), "must have shape"),
    (np.full(param_count(MLP), np.inf, np.float32), "NaN or infinite"),
    (np.zeros(param_count(MLP), np.int32), "must be floating point"),
    ({"fc1.weight": np.zeros((32, 64), np.float32)}, "missing tensors"),
    ({**tensors(MLP), "fc1.weight": np.zeros((64, 32), np.float32)}, "must have shape"),
], ids=["short", "inf", "int", "missing", "shape"])
def test_encoding_refuses_bad_weights(bad, message):
    with pytest.raises(WeightsError, match=message):
        encode_weights(MLP, bad)
