"""Sparse updates: top-k with error feedback, magnitude pruning, and their strict encoding."""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.numpy import save

from fl_agent.aggregation import get_strategy
from fl_agent.errors import ConfigError, FairFLError
from fl_agent.learning.models import ModelSpec, param_count, param_layout
from fl_agent.learning.weights import HEADER_ALLOWANCE, WeightsError, encode_weights
from fl_agent.privacy.sparse import (
    FORMAT,
    ErrorFeedbackState,
    SparseDelta,
    SparseError,
    Sparsifier,
    choose_entries,
    decode_for_plan,
    decode_sparse,
    decode_state,
    densify,
    encode_delta,
    encode_sparse,
    encode_state,
    kept_count,
    largest_entries,
    magnitude_prune,
    max_kept,
    max_sparse_bytes,
    take_back,
    top_k,
)

SMALL = ModelSpec(name="logreg", input_shape=(4,), num_classes=3)  # 15 parameters
DIGITS = ModelSpec.for_features("mlp", (64,), 10)  # the digits MLP, 4810 parameters


def _vectors(spec: ModelSpec, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = param_count(spec)
    global_params = rng.normal(size=d).astype(np.float32)
    return global_params, global_params + 0.01 * rng.normal(size=d).astype(np.float32)


def _metadata(spec: ModelSpec, **changes: object) -> dict[str, str]:
    fields = {"base": "global", "format": FORMAT, "k": 3, "length": param_count(spec),
              "model": spec.name, "spec": json.loads(spec.to_json()),
              "spec_sha256": spec.sha256(), **changes}
    return {"fairfl": json.dumps(fields, sort_keys=True, separators=(",", ":"))}


def _document(indices: object = (1, 4, 9), values: object = (0.5, -1.0, 2.0),
              index_dtype: object = np.uint32, value_dtype: object = np.float32,
              spec: ModelSpec = SMALL, extra: dict[str, np.ndarray] | None = None,
              **metadata: object) -> bytes:
    """A sparse-delta document as an attacker could write it: any tensors, any metadata."""
    tensors = {"indices": np.asarray(indices, dtype=index_dtype),
               "values": np.asarray(values, dtype=value_dtype), **(extra or {})}
    metadata.setdefault("k", int(np.asarray(indices).shape[0]))
    return save(tensors, metadata=_metadata(spec, **metadata))


# ------------------------------------------------------------------------------ round trip


def test_a_sparse_delta_round_trips_exactly_and_deterministically():
    global_params, local = _vectors(DIGITS)
    delta, _ = Sparsifier(0.9).sparsify(global_params, local)
    data = encode_delta(DIGITS, delta)
    assert data == encode_sparse(DIGITS, delta.indices.copy(), delta.values.copy())
    back = decode_sparse(data, DIGITS)
    assert back == delta and back != SparseDelta(delta.indices, delta.values, 4810, "zero")
    assert (back.length, back.base, back.k) == (4810, "global", 481)
    assert back.indices.dtype == np.uint32 and back.values.dtype == np.float32
    assert decode_sparse(bytearray(data), DIGITS).k == 481
    assert decode_sparse(memoryview(data), DIGITS).k == 481
    dense = densify(back, global_params)
    assert dense.dtype == np.float32 and dense.shape == global_params.shape
    untouched = np.setdiff1d(np.arange(4810), back.indices)
    assert np.array_equal(dense[untouched], global_params[untouched])
    np.testing.assert_allclose(dense[back.indices], (local - global_params)[back.indices]
                               + global_params[back.indices], rtol=0, atol=1e-6)


def test_the_residual_round_trips_bit_for_bit():
    global_params, local = _vectors(DIGITS)
    _, state = Sparsifier(0.99).sparsify(global_params, local)
    data = encode_state(DIGITS, state)
    assert data == encode_state(DIGITS, state)
    back = decode_state(data, DIGITS)
    assert back.residual.dtype == np.float64
    assert back == state and np.array_equal(back.residual, state.residual)
    with pytest.raises(SparseError, match="made for spec"):
        decode_state(data, SMALL)
    with pytest.raises(SparseError, match="not a FairFL fairfl-sparse-delta/1"):
        decode_sparse(data, DIGITS)  # a residual is not a delta, nor the other way round


def test_top_k_keeps_the_largest_entries_and_breaks_ties_by_index():
    vector = np.array([0.0, -3.0, 1.0, 3.0, -1.0, 2.0])
    assert largest_entries(vector, 2).tolist() == [1, 3]  # |-3| ties |3|: both kept
    assert largest_entries(vector, 3).tolist() == [1, 3, 5]
    assert largest_entries(np.array([1.0, -1.0, 1.0]), 2).tolist() == [0, 1]
    assert largest_entries(np.array([0.0, 0.0, 5.0]), 2).tolist() == [2]  # zeros are not sent
    assert kept_count(4810, 0.9) == 481 and kept_count(4810, 0.99) == 48
    assert kept_count(4810, 0.5) == 2405 and kept_count(4810, 0.0) == 4810
    assert kept_count(10, 0.999) == 1  # always at least one entry


def test_per_tensor_selection_keeps_the_fraction_in_every_layer():
    rng = np.random.default_rng(3)
    vector = rng.normal(size=4810)
    vector[:4096] *= 1e-3  # fc1 small: a global top-k would skip it
    everywhere = choose_entries(vector, 0.9)
    per_tensor = choose_entries(vector, 0.9, DIGITS)
    assert np.count_nonzero(everywhere < 4096) == 0
    for slot in param_layout(DIGITS):
        inside = (per_tensor >= slot.offset) & (per_tensor < slot.offset + slot.size)
        assert np.count_nonzero(inside) == kept_count(slot.size, 0.9)
    assert np.all(np.diff(per_tensor.astype(np.int64)) > 0)
    delta, _ = Sparsifier(0.9, scope="tensor", spec=DIGITS).sparsify(np.zeros(4810), vector)
    assert np.array_equal(delta.indices, per_tensor)


# -------------------------------------------------------------------------- error feedback


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9, 0.99])
def test_error_feedback_conserves_mass(ratio):
    """Everything sent over the rounds plus what is still held back is exactly the sum of
    the true deltas: nothing is lost, only delayed."""
    rng = np.random.default_rng(7)
    d = param_count(DIGITS)
    sparsifier = Sparsifier(ratio)
    global_params = rng.normal(size=d).astype(np.float32)
    state = None
    sent = np.zeros(d)
    true = np.zeros(d)
    for round_number in range(12):
        local = global_params + rng.normal(scale=0.05, size=d).astype(np.float32)
        delta, state = sparsifier.sparsify(global_params, local, state)
        state = decode_state(encode_state(DIGITS, state), DIGITS)  # kept as bytes
        received = decode_sparse(encode_delta(DIGITS, delta), DIGITS)
        assert received.k == (kept_count(d, ratio))
        sent += received.to_dense().astype(np.float64)
        true += local.astype(np.float64) - global_params.astype(np.float64)
        global_params = densify(received, global_params)  # the next round starts here
        assert np.abs(sent + state.residual - true).max() <= 1e-12 * (round_number + 1)
    if ratio > 0:  # a real residual: the test would see a lost or doubled entry
        assert np.abs(state.residual).max() > 1e-3


def test_without_error_feedback_the_dropped_mass_is_lost():
    global_params, local = _vectors(DIGITS)
    sparsifier = Sparsifier(0.9, error_feedback=False)
    delta, state = sparsifier.sparsify(global_params, local)
    assert state is None and not sparsifier.keeps_state
    second, _ = sparsifier.sparsify(global_params, local)
    assert np.array_equal(delta.indices, second.indices)  # the same entries, every round
    with pytest.raises(ConfigError, match="keeps no residual"):
        sparsifier.sparsify(global_params, local, ErrorFeedbackState.zeros(4810))


def test_the_residual_is_added_before_choosing():
    global_params = np.zeros(4)
    state = ErrorFeedbackState(np.array([0.0, 0.0, 5.0, 0.0]))
    delta, state = top_k(global_params, np.array([1.0, 0.0, 0.0, 2.0]), 0.75, state)
    assert delta.indices.tolist() == [2] and delta.values.tolist() == [5.0]
    assert state.residual.tolist() == [1.0, 0.0, 0.0, 2.0]


def test_an_update_taken_back_is_sent_again_and_mass_is_conserved():
    """An update the aggregator did not use goes back into the residual: what was used plus
    the residual is again the sum of the true deltas, and the entries go out again."""
    rng = np.random.default_rng(3)
    d = param_count(DIGITS)
    sparsifier = Sparsifier(0.99, scope="tensor", spec=DIGITS)
    global_params = rng.normal(size=d).astype(np.float32)
    state, used, true = None, np.zeros(d), np.zeros(d)
    for round_number in range(8):
        local = global_params + rng.normal(scale=0.05, size=d).astype(np.float32)
        delta, state = sparsifier.sparsify(global_params, local, state)
        true += local.astype(np.float64) - global_params.astype(np.float64)
        if round_number % 3 == 1:  # not used: taken back, the model stays
            before = state.residual.copy()
            state = take_back(state, decode_sparse(encode_delta(DIGITS, delta), DIGITS))
            changed = np.flatnonzero(state.residual != before)
            assert np.array_equal(changed, delta.indices)
            again, _ = sparsifier.sparsify(global_params, global_params, state)
            assert np.array_equal(again.indices, delta.indices)  # sent again next time
            assert np.array_equal(again.values, delta.values)
        else:
            used += delta.to_dense().astype(np.float64)
            global_params = densify(delta, global_params)
        assert np.abs(used + state.residual - true).max() <= 1e-12 * (round_number + 1)


def test_only_a_top_k_delta_of_the_residuals_length_is_taken_back():
    delta = SparseDelta(np.array([1], np.uint32), np.array([2.0], np.float32), 4, "global")
    assert take_back(None, delta).residual.tolist() == [0.0, 2.0, 0.0, 0.0]
    state = ErrorFeedbackState(np.array([1.0, 1.0, 1.0, 1.0]))
    assert take_back(state, delta).residual.tolist() == [1.0, 3.0, 1.0, 1.0]
    assert state.residual.tolist() == [1.0, 1.0, 1.0, 1.0]  # the saved state is not changed
    with pytest.raises(ConfigError, match="magnitude pruning keeps none"):
        take_back(state, SparseDelta(np.array([1], np.uint32), np.array([2.0], np.float32),
                                     4, "zero"))
    with pytest.raises(ConfigError, match="length 5, the delta 4"):
        take_back(ErrorFeedbackState(np.zeros(5)), delta)


# ------------------------------------------------------------------------ magnitude pruning


def test_magnitude_pruning_zeroes_the_smallest_weights_of_the_model():
    global_params, local = _vectors(DIGITS)
    delta, state = Sparsifier(0.9, method="magnitude").sparsify(global_params, local)
    assert state is None and delta.base == "zero" and delta.k == 481
    pruned = densify(decode_sparse(encode_delta(DIGITS, delta), DIGITS), global_params)
    kept = np.flatnonzero(pruned)
    assert kept.size == 481
    assert np.array_equal(pruned[kept], local[kept])  # the remaining weights, unchanged
    assert np.abs(local[kept]).min() >= np.abs(np.delete(local, kept)).max()
    assert magnitude_prune(local, 0.9) == delta
    with pytest.raises(ConfigError, match="keeps no residual"):
        Sparsifier(0.5, method="magnitude").sparsify(global_params, local,
                                                     ErrorFeedbackState.zeros(4810))


def test_densified_updates_go_through_an_unchanged_strategy():
    global_params, _ = _vectors(SMALL)
    rng = np.random.default_rng(1)
    updates = []
    for _ in range(4):
        local = global_params + rng.normal(size=15).astype(np.float32)
        delta, _ = Sparsifier(0.5).sparsify(global_params, local)
        updates.append(densify(decode_sparse(encode_delta(SMALL, delta), SMALL),
                               global_params))
    result = get_strategy("fedavg").aggregate(global_params, np.stack(updates), [1, 1, 1, 1])
    np.testing.assert_allclose(result.params, np.mean(updates, axis=0), rtol=0, atol=1e-6)
    assert result.accepted == (0, 1, 2, 3)


# ----------------------------------------------------------------------------------- size


def test_the_encoding_costs_eight_bytes_per_entry_plus_a_header():
    global_params, local = _vectors(DIGITS)
    dense = len(encode_weights(DIGITS, local))
    for ratio in (0.5, 0.9, 0.99):
        delta, _ = Sparsifier(ratio).sparsify(global_params, local)
        data = encode_delta(DIGITS, delta)
        (header,) = struct.unpack("<Q", data[:8])
        assert len(data) == 8 + header + 8 * delta.k  # nothing else travels
        assert header < 600  # the metadata: the spec JSON and its hash
    # At 0.9 the tensors are exactly a fifth of the dense ones (8 bytes x d/10 vs 4 x d);
    # with each side's header (~0.46 kB here) the document is 0.218 of the dense one.
    delta, _ = Sparsifier(0.9).sparsify(global_params, local)
    data = encode_delta(DIGITS, delta)
    (header,) = struct.unpack("<Q", data[:8])
    assert 8 * delta.k / (4 * 4810) == pytest.approx(0.2, abs=1e-3)
    assert len(data) / dense == pytest.approx((8 + header + 8 * 481) / dense, abs=1e-12)
    assert len(data) / dense < 0.22
    # Below a ratio of 0.5 the sparse form is larger than the dense one: say so, test so.
    delta, _ = Sparsifier(0.0).sparsify(global_params, local)
    assert len(encode_delta(DIGITS, delta)) > 1.9 * dense


# --------------------------------------------------------------------------- bad input


MALFORMED = {
    "out of range index": (lambda: _document(indices=(1, 4, 15)),
                           "index 15 is out of range for a vector of length 15"),
    "unsorted indices": (lambda: _document(indices=(4, 1, 9)),
                         "indices are not sorted: 4 comes before 1 at position 1"),
    "duplicate index": (lambda: _document(indices=(1, 4, 4)),
                        "index 4 repeats at position 2"),
    "int64 indices": (lambda: _document(index_dtype=np.int64),
                      "tensor 'indices' must be U32, got I64"),
    "float64 values": (lambda: _document(value_dtype=np.float64),
                       "tensor 'values' must be F32, got F64"),
    "NaN value": (lambda: _document(values=(0.5, np.nan, 2.0)),
                  "value at position 1 is .*nan.* values must be finite"),
    "infinite value": (lambda: _document(values=(0.5, 1.0, np.inf)),
                       "value at position 2 is .*inf.* values must be finite"),
    "truncated bytes": (lambda: _document()[:-5],
                        "truncated: the tensors need 24 bytes after the header, only 19"),
    "truncated header": (lambda: _document()[:40],
                         "truncated: the header claims .* bytes, only 32 follow"),
    "pickle": (lambda: pickle.dumps({"indices": [1], "values": [0.5]}),
               r"refused: the sparse delta is a pickle \(protocol \d\); FairFL never "
               "unpickles"),
    "torch.save": (lambda: _torch_save(), "refused: the sparse delta is a zip archive"),
    "wrong spec": (lambda: _document(spec=ModelSpec(name="logreg", input_shape=(5,),
                                                    num_classes=3), length=15),
                   "made for spec .*expected"),
    "wrong length": (lambda: _document(length=16), "metadata length is 16; logreg has 15"),
    "k above d": (lambda: _document(k=16), "metadata k = 16 exceeds the 15 parameters"),
    "k disagrees": (lambda: _document(k=2), "metadata says k = 2, the tensors hold 3"),
    "unequal lengths": (lambda: _document(values=(0.5, 1.0)),
                        "indices and values differ in length: 3 and 2"),
    "2-D values": (lambda: _document(values=((0.5,), (1.0,), (2.0,))),
                   "tensor 'values' must be 1-D, got shape"),
    "extra tensor": (lambda: _document(extra={"payload": np.zeros(2, np.float32)}),
                     r"unexpected \['payload'\]"),
    "missing tensor": (lambda: save({"indices": np.array([1], np.uint32)},
                                    metadata=_metadata(SMALL, k=1)),
                       r"missing \['values'\]"),
    "other format": (lambda: _document(format="fairfl-weights/1"),
                     "not a FairFL fairfl-sparse-delta/1: format is 'fairfl-weights/1'"),
    "unknown base": (lambda: _document(base="other"), "metadata base is 'other'"),
    "extra metadata field": (lambda: _document(note="hi"), r"unexpected \['note'\]"),
    "non-canonical metadata": (lambda: save(
        {"indices": np.array([1], np.uint32), "values": np.array([1.0], np.float32)},
        metadata={"fairfl": json.dumps(json.loads(_metadata(SMALL, k=1)["fairfl"]),
                                       indent=1)}), "not canonical JSON"),
    "two metadata entries": (lambda: save(
        {"indices": np.array([1], np.uint32), "values": np.array([1.0], np.float32)},
        metadata={**_metadata(SMALL, k=1), "other": "x"}),
        "exactly one entry, 'fairfl'; found"),
    "not safetensors": (lambda: b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}",
                        "not a safetensors document"),
}


def _torch_save() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"indices": torch.tensor([1])}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_each_malformed_document_is_refused_with_its_own_reason(case):
    make, message = MALFORMED[case]
    with pytest.raises(SparseError, match=message) as caught:
        decode_sparse(make(), SMALL)
    assert isinstance(caught.value, WeightsError | FairFLError | ValueError)


def test_the_reasons_are_all_different():
    messages = []
    for make, _ in MALFORMED.values():
        with pytest.raises(SparseError) as caught:
            decode_sparse(make(), SMALL)
        messages.append(str(caught.value))
    assert len(set(messages)) == len(messages)


def test_oversized_input_is_refused_before_parsing():
    data = _document()
    with pytest.raises(SparseError, match=f"{len(data)} bytes, more than the limit of 100"):
        decode_sparse(data, SMALL, max_bytes=100)
    too_big = b"\x80" * (max_sparse_bytes(SMALL) + 1)  # a pickle header, never looked at
    with pytest.raises(SparseError, match="more than the limit"):
        decode_sparse(too_big, SMALL)
    with pytest.raises(ConfigError, match="max_bytes"):
        decode_sparse(data, SMALL, max_bytes=0)
    with pytest.raises(SparseError, match="must be bytes, got str"):
        decode_sparse("not bytes", SMALL)  # type: ignore[arg-type]


def test_a_task_refuses_updates_denser_than_its_ratio_or_of_the_other_method():
    limit = max_kept(DIGITS, 0.9)
    assert limit == sum(kept_count(slot.size, 0.9) for slot in param_layout(DIGITS)) == 481
    global_params, local = _vectors(DIGITS)
    sent = encode_delta(DIGITS, Sparsifier(0.9, scope="tensor", spec=DIGITS)
                        .sparsify(global_params, local)[0])
    assert decode_for_plan(sent, DIGITS, 0.9, "topk").k == limit  # what a participant sends
    first = param_layout(DIGITS)[0]  # fc1.weight, 4,096 entries: 410 may be sent
    assert kept_count(first.size, 0.9) == 410
    fewer = encode_sparse(DIGITS, np.arange(410), np.ones(410))  # fewer than allowed is fine
    assert decode_for_plan(fewer, DIGITS, 0.9, "topk").k == 410
    piled = encode_sparse(DIGITS, np.arange(411), np.ones(411))  # one too many in one layer
    with pytest.raises(SparseError, match="sends 411 entries of fc1.weight \\(4,096\\); this "
                       "task drops 0.9 of each tensor, so at most 410 may be sent"):
        decode_for_plan(piled, DIGITS, 0.9, "topk")
    assert decode_for_plan(piled, DIGITS, 0.5, "topk").k == 411
    with pytest.raises(SparseError, match="more than the limit"):  # a pickle header, unread
        decode_for_plan(b"\x80" * (8 * limit + HEADER_ALLOWANCE + 1), DIGITS, 0.9, "topk")
    with pytest.raises(SparseError, match="prunes by magnitude, whose entries are on 'zero'"):
        decode_for_plan(sent, DIGITS, 0.9, "magnitude")
    pruned = encode_delta(DIGITS, magnitude_prune(local, 0.9, DIGITS))
    assert decode_for_plan(pruned, DIGITS, 0.9, "magnitude").base == "zero"
    with pytest.raises(SparseError, match="prunes by topk, whose entries are on 'global'"):
        decode_for_plan(pruned, DIGITS, 0.9, "topk")


def test_the_error_is_a_weights_error_a_fairfl_error_and_a_value_error():
    assert issubclass(SparseError, WeightsError)
    assert issubclass(SparseError, FairFLError) and issubclass(SparseError, ValueError)


def test_encoding_checks_what_decoding_checks():
    with pytest.raises(SparseError, match="out of range"):
        encode_sparse(SMALL, [0, 15], [1.0, 2.0])
    with pytest.raises(SparseError, match="repeats"):
        encode_sparse(SMALL, [3, 3], [1.0, 2.0])
    with pytest.raises(SparseError, match="not sorted"):
        encode_sparse(SMALL, [3, 2], [1.0, 2.0])
    with pytest.raises(SparseError, match="must be finite"):
        encode_sparse(SMALL, [1], [1e300])  # finite in float64, infinite in float32
    with pytest.raises(SparseError, match="must be integers"):
        encode_sparse(SMALL, [1.0], [1.0])
    with pytest.raises(SparseError, match="16 entries for a vector of length 15"):
        SparseDelta(np.arange(16), np.ones(16), 15)
    with pytest.raises(SparseError, match="has length 4810"):
        encode_delta(SMALL, SparseDelta(np.array([1]), np.array([1.0]), 4810))
    assert decode_sparse(encode_sparse(SMALL, [], []), SMALL).k == 0  # nothing to send


def test_residual_documents_are_checked_strictly():
    good = encode_state(SMALL, ErrorFeedbackState(np.arange(15.0)))
    with pytest.raises(SparseError, match="tensor 'residual' must be F64, got F32"):
        decode_state(save({"residual": np.zeros(15, np.float32)},
                          metadata=_state_metadata()), SMALL)
    with pytest.raises(SparseError, match="residual has 14 entries"):
        decode_state(save({"residual": np.zeros(14)}, metadata=_state_metadata()), SMALL)
    with pytest.raises(SparseError, match="residual contains NaN"):
        decode_state(save({"residual": np.full(15, np.nan)}, metadata=_state_metadata()),
                     SMALL)
    with pytest.raises(SparseError, match="the residual is a pickle"):
        decode_state(pickle.dumps(np.zeros(15)), SMALL)
    with pytest.raises(SparseError, match="truncated"):
        decode_state(good[:-1], SMALL)


def _state_metadata() -> dict[str, str]:
    fields = {"format": "fairfl-sparse-residual/1", "model": SMALL.name,
              "spec": json.loads(SMALL.to_json()), "spec_sha256": SMALL.sha256()}
    return {"fairfl": json.dumps(fields, sort_keys=True, separators=(",", ":"))}


@pytest.mark.parametrize("arguments, message", [
    ({"ratio": 1.0}, "in \\[0, 1\\)"),
    ({"ratio": -0.1}, "in \\[0, 1\\)"),
    ({"ratio": float("nan")}, "in \\[0, 1\\)"),
    ({"ratio": True}, "in \\[0, 1\\)"),
    ({"ratio": 0.5, "method": "random"}, "method must be one of"),
    ({"ratio": 0.5, "scope": "layer"}, "scope must be one of"),
    ({"ratio": 0.5, "scope": "tensor"}, "pass its spec"),
    ({"ratio": 0.5, "error_feedback": 1}, "error_feedback must be True or False"),
])
def test_bad_settings_are_config_errors(arguments, message):
    with pytest.raises(ConfigError, match=message):
        Sparsifier(**arguments)


def test_bad_vectors_are_refused():
    sparsifier = Sparsifier(0.5)
    with pytest.raises(ConfigError, match="local_params has length 3, global_params 4"):
        sparsifier.sparsify(np.zeros(4), np.zeros(3))
    with pytest.raises(SparseError, match="local_params contains NaN"):
        sparsifier.sparsify(np.zeros(2), np.array([0.0, np.nan]))
    with pytest.raises(ConfigError, match="the residual has length 3, the model 2"):
        sparsifier.sparsify(np.zeros(2), np.ones(2), ErrorFeedbackState.zeros(3))
    with pytest.raises(ConfigError, match="the sparse delta has length 15, the global model 4"):
        densify(SparseDelta(np.array([1]), np.array([1.0]), 15), np.zeros(4))


# ------------------------------------------------------------------------------ benchmark


def test_the_attackers_tpr_counts_only_the_rounds_they_attack_in():
    from types import SimpleNamespace

    from benchmarks.privacy_sparse import attack_round_tpr
    from fl_agent.simulation.config import SimulationConfig

    def rnd(number, submitted, accepted):
        return SimpleNamespace(round=number, submitted=submitted, decision=SimpleNamespace(
            accepted=[submitted.index(i) for i in accepted]))

    # clients 0-3, attackers 2 and 3; attacker 3 is blacklisted after round 2
    rounds = [rnd(1, (0, 1, 2, 3), (0, 1)), rnd(2, (0, 1, 2, 3), (0, 1, 2, 3)),
              rnd(3, (0, 1, 2), (0, 1, 2)), rnd(4, (0, 1, 2), (0, 1))]
    every_2 = SimulationConfig(attack="gaussian", attack_every=2, rounds=4)
    assert attack_round_tpr(rounds, {2, 3}, every_2.attacks_in) == 2 / 3  # rounds 1, 3
    every = SimulationConfig(attack="gaussian", rounds=4)
    assert attack_round_tpr(rounds, {2, 3}, every.attacks_in) == 3 / 6
    late = SimulationConfig(attack="gaussian", attack_from=4, rounds=4)
    assert attack_round_tpr(rounds, {2, 3}, late.attacks_in) == 1.0
    assert attack_round_tpr(rounds, set(), every.attacks_in) is None


def test_the_benchmark_takes_back_only_an_honest_clients_unused_update():
    """On the wire, an honest client told its update was not used sends it again next round
    (on an unchanged model, exactly it); an accepted one is gone; an attacker keeps what it
    did; a poison's own ``observe`` still hears every verdict."""
    from benchmarks.privacy_sparse import _on_the_wire
    from fl_agent.simulation.offline import Client

    heard = []

    def poison(global_params, trained):
        return trained

    poison.observe = lambda verdict, *, ban_next, reason: heard.append((verdict, reason))
    rng = np.random.default_rng(5)
    d = param_count(DIGITS)
    g = rng.normal(size=d).astype(np.float32)
    local = g + rng.normal(scale=0.05, size=d).astype(np.float32)
    sparsifier = Sparsifier(0.99, scope="tensor", spec=DIGITS)
    empty = np.zeros(0)

    def wire(take_back, **client):
        return _on_the_wire(Client(empty, empty, 1, **client), DIGITS, sparsifier, [],
                            take_back).poison

    for verdict, reason, after, again in (
            ("rejected", "trigger", "any", True), ("held_back", "held_back", "any", True),
            ("accepted", None, "any", False), ("rejected", "noise", "noise", True),
            ("held_back", "held_back", "noise", True), ("rejected", "trigger", "noise", False),
            ("rejected", "norm_outlier", "noise", False)):
        send = _on_the_wire(Client(empty, empty, 1), DIGITS, sparsifier, [], True,
                            take_back_after=after).poison
        first = send(g, local) - g
        send.observe(verdict, ban_next=False, reason=reason)
        second = send(g, g) - g  # nothing new trained: only the residual goes out
        assert np.array_equal(second, first) == again, (verdict, reason, after)
    for client, take in (({"malicious": True, "poison": poison}, True), ({}, False)):
        send = wire(take, **client)
        first = send(g, local) - g
        send.observe("rejected", ban_next=False, reason="noise")
        assert not np.array_equal(send(g, g) - g, first)
    assert heard == [("rejected", "noise")]


def test_a_bare_attack_round_neither_carries_nor_leaves_a_residual():
    """With ``bare_attacks`` a poisoned round goes out as the top-k of the poison alone, and
    the residual of the attacker's honest rounds is what it was before that round."""
    from benchmarks.privacy_sparse import _on_the_wire
    from fl_agent.privacy.sparse import top_k
    from fl_agent.simulation.offline import Client

    rng = np.random.default_rng(8)
    d = param_count(DIGITS)
    g = rng.normal(size=d).astype(np.float32)
    honest = g + rng.normal(scale=0.05, size=d).astype(np.float32)
    noise = g + rng.normal(scale=0.05, size=d).astype(np.float32)
    sparsifier = Sparsifier(0.99, scope="tensor", spec=DIGITS)
    empty = np.zeros(0)
    outputs = {}
    for bare in (True, False):
        rounds = iter((False, True, False))  # honest, attack, honest
        send = _on_the_wire(Client(empty, empty, 1, malicious=True,
                                   poison=lambda _, t, rounds=rounds:
                                   noise if next(rounds) else t),
                            DIGITS, sparsifier, [], bare_attacks=bare).poison
        outputs[bare] = [send(g, honest) - g, send(g, honest) - g, send(g, g) - g]
    first, attack, after = outputs[True]
    alone, _ = top_k(g, noise, 0.99, None, DIGITS)
    assert np.array_equal(attack, densify(alone, g) - g)
    _, residual = top_k(g, honest, 0.99, None, DIGITS)  # what the honest round left behind
    resent, _ = top_k(g, g, 0.99, residual, DIGITS)
    assert np.array_equal(after, densify(resent, g) - g)
    assert not np.array_equal(outputs[False][1], attack)  # with its residual: another update
    assert not np.array_equal(outputs[False][2], after)


def test_every_client_on_the_wire_hears_its_verdict_each_round(tmp_path):
    """run_offline tells each client sending through the wire its verdict after each round
    (what --take-back reads), and the flags reach the rows; --bare-attacks is refused where
    there is no poisoned round."""
    from dataclasses import replace

    from benchmarks.privacy_sparse import _on_the_wire, main
    from fl_agent.simulation.config import SimulationConfig
    from fl_agent.simulation.offline import federation, run_offline

    fed = federation(SimulationConfig(seed=1, rounds=2, clients=3, scoring="loo"))
    sparsifier = Sparsifier(0.9, scope="tensor", spec=fed.spec)
    heard = []
    members = []
    for i, client in enumerate(fed.clients):
        send = _on_the_wire(client, fed.spec, sparsifier, [], take_back=True).poison
        forward = send.observe

        def observe(verdict, *, ban_next, reason, i=i, forward=forward):
            heard.append((i, verdict, reason))
            forward(verdict, ban_next=ban_next, reason=reason)

        send.observe = observe
        members.append(replace(client, poison=send))
    run = run_offline(fed, members, strategy=get_strategy("fedavg"))
    assert sorted(heard) == sorted((i, "accepted", None) for i in range(3) for _ in run.rounds)
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    common = ["--seeds", "1", "--ratios", "0.9", "--methods", "topk-tensor", "--strategies",
              "fedavg", "--clients", "4", "--rounds", "1", "--json", str(out), "--plot",
              str(png)]
    done = CliRunner().invoke(main, [*common, "--attack", "gaussian", "--take-back",
                                     "--take-back-after", "noise", "--bare-attacks"])
    assert done.exit_code == 0, done.output
    row = json.loads(out.read_text())["runs"][0]
    assert row["take_back"] is True and row["bare_attacks"] is True
    assert row["take_back_after"] == "noise"
    for attack in ("label_flip", "none"):
        refused = CliRunner().invoke(main, [*common, "--attack", attack, "--bare-attacks"])
        assert refused.exit_code == 2 and "--bare-attacks" in refused.output
    refused = CliRunner().invoke(main, [*common, "--take-back-after", "noise"])
    assert refused.exit_code == 2 and "add --take-back" in refused.output


def test_the_benchmark_runs_on_tiny_settings(tmp_path):
    from benchmarks.privacy_sparse import main

    out, png = tmp_path / "sparse.json", tmp_path / "sparse.png"
    done = CliRunner().invoke(main, ["--seeds", "1", "--ratios", "0,0.9", "--methods", "topk",
                                     "--strategies", "fedavg", "--clients", "3",
                                     "--rounds", "1", "--json", str(out),
                                     "--plot", str(png)])
    assert done.exit_code == 0, done.output
    runs = json.loads(out.read_text())["runs"]
    assert [(r["method"], r["ratio"]) for r in runs] == [("dense", 0.0), ("topk", 0.9)]
    assert runs[1]["bytes_per_update"] < 0.22 * runs[0]["bytes_per_update"]
    assert png.stat().st_size > 0
    refused = CliRunner().invoke(main, ["--methods", "random"])
    assert refused.exit_code == 2 and "use some of" in refused.output
    # FairFL as the aggregator runs a task that prunes (two rounds in the trigger screen),
    # with the registry's blacklisting, and with the screen forced back to one round.
    for extra, rounds in (([], [1, 2]), (["--trigger-rounds", "1"], [1, 1])):
        done = CliRunner().invoke(main, ["--seeds", "1", "--ratios", "0,0.9", "--methods",
                                         "topk", "--strategies", "fairfl", "--clients", "4",
                                         "--rounds", "2", "--blacklist", "--json", str(out),
                                         "--plot", str(png), *extra])
        assert done.exit_code == 0, done.output
        runs = json.loads(out.read_text())["runs"]
        assert [r["trigger_rounds"] for r in runs] == rounds
        assert all(r["blacklist"] and r["honest_trigger_by_window"] is None for r in runs)
