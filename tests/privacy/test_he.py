"""Homomorphic FLTrust: the decrypted results match numpy, the aggregator never holds a secret
key, and documents from another context, truncated or crafted are refused with clear errors."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tenseal as ts
import tenseal.sealapi as sealapi

from fl_agent.aggregation.base import Reason
from fl_agent.aggregation.strategies import FLTrust
from fl_agent.errors import ConfigError, FairFLError
from fl_agent.privacy.he import (
    CKKSParameters,
    EncryptedUpdate,
    HEError,
    KeyHolder,
    PublicContext,
    RoundScalars,
    decode_update,
    encrypt_update,
    encrypted_scalars,
    fltrust_round,
    fltrust_weights,
    weighted_sum,
)
from fl_agent.privacy.he_context import missing_galois_keys
from fl_agent.privacy.he_format import ciphertext_bytes, pack, proto_ciphertexts, unpack

D = 9_000  # three ciphertexts, the last one partly filled
SIGN_FLIP, ZERO, SCALED = 4, 5, 6


@pytest.fixture(scope="module")
def key_holder() -> KeyHolder:
    return KeyHolder.create()


@pytest.fixture(scope="module")
def other_key_holder() -> KeyHolder:
    """Another task's key holder, with the same parameters."""
    return KeyHolder.create()


@pytest.fixture(scope="module")
def aggregator_context(key_holder) -> PublicContext:
    """The aggregator's view: only the public bytes the task document names."""
    return PublicContext(key_holder.public_context)


@pytest.fixture(scope="module")
def round_data():
    """Global model, the aggregator's server model and seven deltas: four honest ones of
    different lengths, a sign-flipped one, a free rider and honest update 0 scaled by 100."""
    rng = np.random.default_rng(7)
    global_params = rng.normal(size=D).astype(np.float32)
    reference = rng.normal(0, 0.01, D)
    honest = [reference * rng.uniform(0.5, 2.0) + rng.normal(0, 0.01, D) for _ in range(4)]
    deltas = np.array(honest + [-3.0 * honest[0], np.zeros(D), 100.0 * honest[0]])
    return global_params, global_params + reference, deltas


@pytest.fixture(scope="module")
def documents(aggregator_context, round_data):
    return [encrypt_update(aggregator_context, delta) for delta in round_data[2]]


@pytest.fixture(scope="module")
def decided(key_holder, round_data, documents):
    global_params, server, _ = round_data
    return fltrust_round(key_holder, global_params, documents, server, verify=True)


def numpy_fltrust(global_params, server, deltas):
    """FLTrust written out in numpy, independently of the module under test."""
    g0 = server.astype(np.float64) - global_params.astype(np.float64)
    norms = np.linalg.norm(deltas, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    cosines = np.where(norms > 0, deltas @ g0 / (safe * np.linalg.norm(g0)), 0.0)
    trust = np.maximum(cosines, 0.0)
    weights = trust * np.linalg.norm(g0) / safe / trust.sum()
    return weights, weights @ deltas


def test_decrypted_aggregate_matches_numpy(decided, round_data):
    decision, delta = decided
    weights, expected = numpy_fltrust(*round_data)
    assert delta.shape == (D,)
    assert np.max(np.abs(delta - expected)) < 1e-5  # the requirement is 1e-3
    np.testing.assert_allclose(decision.weights, weights, rtol=1e-6, atol=1e-12)


def test_inner_products_and_squared_norms_match_numpy(key_holder, aggregator_context,
                                                      round_data, documents):
    global_params, server, deltas = round_data
    reference = server.astype(np.float64) - global_params
    scalars = key_holder.decrypt_scalars(
        encrypted_scalars(aggregator_context, documents, reference))
    np.testing.assert_allclose(scalars.dots, deltas @ reference, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scalars.squared_norms, (deltas ** 2).sum(axis=1), rtol=1e-6,
                               atol=1e-7)


def test_it_agrees_with_the_plaintext_fltrust_strategy(decided, round_data):
    global_params, server, deltas = round_data
    decision, delta = decided
    encrypted = decision.result(global_params, delta)
    plain = FLTrust(server_update=server).aggregate(global_params, global_params + deltas,
                                                    np.ones(len(deltas)))
    assert encrypted.accepted == plain.accepted == (0, 1, 2, 3, SCALED)
    assert encrypted.rejected == plain.rejected == (SIGN_FLIP, ZERO)
    # The one difference in the rule: a zero delta is a free rider here, zero trust there.
    assert dict(encrypted.reasons) == {SIGN_FLIP: Reason.ZERO_TRUST, ZERO: Reason.FREE_RIDER}
    assert dict(plain.reasons) == {SIGN_FLIP: Reason.ZERO_TRUST, ZERO: Reason.ZERO_TRUST}
    assert encrypted.params.dtype == np.float32
    np.testing.assert_allclose(encrypted.params, plain.params, atol=1e-5)
    np.testing.assert_allclose(encrypted.scores, plain.scores, atol=1e-6)


def test_sign_flipped_update_gets_zero_trust_and_scaled_one_is_norm_scaled(decided,
                                                                          round_data):
    global_params, server, _ = round_data
    decision, _ = decided
    assert decision.trust[SIGN_FLIP] == 0 and decision.weights[SIGN_FLIP] == 0
    assert decision.cosines[SIGN_FLIP] == pytest.approx(-decision.cosines[0], abs=1e-6)
    # 100 x update 0 has its direction, so its trust, and after rescaling to |g0| the same
    # pull on the aggregate: its weight is a hundredth.
    assert decision.trust[SCALED] == pytest.approx(decision.trust[0], rel=1e-6)
    assert decision.weights[SCALED] * 100 == pytest.approx(decision.weights[0], rel=1e-6)
    # Every accepted delta is rescaled to |g0| and averaged: the total pull is |g0|.
    reference_norm = np.linalg.norm(server.astype(np.float64) - global_params)
    assert np.nansum(decision.weights * decision.norms) == pytest.approx(reference_norm)


def test_the_aggregators_objects_hold_no_secret_key(key_holder, aggregator_context):
    public = aggregator_context.tenseal_context
    assert not public.is_private() and not public.has_secret_key()
    assert not ts.context_from(key_holder.public_context).is_private()
    vector = ts.ckks_vector(public, [1.0, 2.0])
    with pytest.raises(ValueError, match="secret"):
        vector.decrypt()
    with pytest.raises(HEError, match="secret key"):
        PublicContext(key_holder.secret_context)


@pytest.mark.parametrize("bits, scale_bits, message", [
    ([60, 60, 60], 20, "scale 2^20.0"),  # CKKS error would reach the rule's scalars
    ([40, 40, 60], 30, "headroom 2^20.0"),  # a squared norm would wrap around unseen
])
def test_a_public_context_too_coarse_for_the_rule_is_refused(bits, scale_bits, message):
    """A context made elsewhere (a key holder's, `task create --he-context`) must meet what
    CKKSParameters requires of the contexts FairFL makes."""
    context = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=8192, coeff_mod_bit_sizes=bits)
    context.global_scale = 2.0 ** scale_bits
    context.generate_galois_keys()
    context.make_context_public()
    with pytest.raises(HEError, match=r"below the 2\^30 and 2\^30 the robust rule") as caught:
        PublicContext(context.serialize())
    assert message in str(caught.value)


def test_tenseal_alone_accepts_a_ciphertext_of_another_key():
    """Why the fingerprint is checked first: same parameters, another key, no complaint."""
    ours, theirs = (ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=8192,
                               coeff_mod_bit_sizes=[60, 60, 60]) for _ in range(2))
    ours.global_scale = theirs.global_scale = 2.0 ** 40
    foreign = ts.ckks_vector(theirs, [1.0, 2.0, 3.0]).serialize()
    garbage = ts.ckks_vector_from(ours, foreign).decrypt()
    assert not np.allclose(garbage, [1.0, 2.0, 3.0], atol=1.0)


def test_an_update_made_under_another_context_is_refused_before_any_math(aggregator_context,
                                                                          other_key_holder):
    foreign = encrypt_update(other_key_holder.public_context, np.ones(D))
    with pytest.raises(HEError, match="another context|not this task's context") as caught:
        decode_update(aggregator_context, foreign, D)
    assert isinstance(caught.value, FairFLError) and isinstance(caught.value, ValueError)
    with pytest.raises(HEError, match="not this task's context"):
        encrypted_scalars(aggregator_context, [foreign], np.ones(D))
    # Relabelled with our fingerprint but made under other parameters: SEAL refuses it.
    small = KeyHolder.create(coeff_mod_bit_sizes=(60, 50, 60))
    header, frames = unpack(encrypt_update(small.public_context, np.ones(D)),
                            "fairfl-ckks-update/2", {"chunks": int, "context": str,
                                                     "length": int, "slots": int}, 10**7)
    forged = pack({**header, "context": aggregator_context.fingerprint}, frames)
    with pytest.raises(HEError, match="not a ciphertext of this task's context"):
        decode_update(aggregator_context, forged, D)


def _reframe(document: bytes, header_change=None, frames_change=None) -> bytes:
    header, frames = unpack(document, "fairfl-ckks-update/2", {"chunks": int, "context": str,
                                                               "length": int, "slots": int},
                            10**7)
    return pack({**header, **(header_change or {})},
                frames if frames_change is None else frames_change(frames))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda doc: doc[:-10], "truncated"),
    (lambda doc: doc[:3], "too short"),
    (lambda doc: doc + b"\x00\x00", "truncated"),
    (lambda doc: doc + struct.pack(">I", 5) + b"12345", "must have 3 ciphertexts"),
    (lambda doc: _reframe(doc, frames_change=lambda f: f[:2]), "must have 3 ciphertexts"),
    (lambda doc: _reframe(doc, {"chunks": 2}, lambda f: f[:2]), "must have 3 ciphertexts"),
    (lambda doc: _reframe(doc, {"length": D + 1}), "model has 9000 parameters"),
    (lambda doc: _reframe(doc, {"format": "fairfl-ckks-update/1"}), "format is"),
    (lambda doc: _reframe(doc, frames_change=lambda f: [f[0][:-1], *f[1:]]),
     "not a ciphertext of this task's context"),
    (lambda doc: _reframe(doc, frames_change=lambda f: [f[1], f[0], b"junk"]),
     "not a ciphertext of this task's context"),
    (lambda doc: struct.pack(">I", 2) + b"{}" + doc[4 + struct.unpack(">I", doc[:4])[0]:],
     "format is"),
    (lambda doc: struct.pack(">I", 10**6) + doc[4:], "header length"),
    (lambda doc: doc + b"\x00" * 10**6, "more than the"),
])
def test_malformed_update_documents_are_refused(aggregator_context, documents, mutate,
                                                message):
    with pytest.raises(HEError, match=message):
        decode_update(aggregator_context, mutate(documents[0]), D)


def test_a_non_canonical_header_is_refused(aggregator_context, documents):
    head_length = struct.unpack(">I", documents[0][:4])[0]
    header = json.loads(documents[0][4:4 + head_length])
    spaced = json.dumps(header, indent=1).encode()
    document = struct.pack(">I", len(spaced)) + spaced + documents[0][4 + head_length:]
    with pytest.raises(HEError, match="canonical"):
        decode_update(aggregator_context, document, D)


def test_a_stale_chunk_scale_is_refused(aggregator_context):
    """A ciphertext at the right level but another scale is not a fresh encryption."""
    context = aggregator_context.tenseal_context
    vector = ts.ckks_vector(context, [0.5] * aggregator_context.slots, 2.0 ** 30)
    _, (frame,), _ = proto_ciphertexts(vector.serialize())
    document = pack({"chunks": 1, "context": aggregator_context.fingerprint,
                     "format": "fairfl-ckks-update/2", "length": 10, "slots": 4096}, [frame])
    with pytest.raises(HEError, match="scale"):
        decode_update(aggregator_context, document, 10)


def test_the_key_holder_refuses_to_decrypt_an_update_passed_off_as_scalars(
        key_holder, aggregator_context, documents):
    _, frames = unpack(documents[0], "fairfl-ckks-update/2", {"chunks": int, "context": str,
                                                             "length": int, "slots": int},
                       10**7)
    disguised = pack({"context": key_holder.fingerprint, "format": "fairfl-ckks-scalars/2",
                      "projections": 4, "updates": 1}, (frames * 6)[:6])
    with pytest.raises(HEError, match="scale"):  # a fresh ciphertext, not a product
        key_holder.decrypt_scalars(disguised)
    # Multiplied by 1, the chunk has a product's scale, but not one value in every slot.
    unit = weighted_sum(aggregator_context, documents[:1], [1.0], D)
    _, chunks = unpack(unit, "fairfl-ckks-aggregate/1", {"chunks": int, "context": str,
                                                         "length": int, "slots": int}, 10**7)
    disguised = pack({"context": key_holder.fingerprint, "format": "fairfl-ckks-scalars/2",
                      "projections": 4, "updates": 1}, (chunks * 6)[:6])
    with pytest.raises(HEError, match="not one value in every slot"):
        key_holder.decrypt_scalars(disguised)


def test_the_key_holder_checks_the_aggregate_when_given_the_round(
        key_holder, aggregator_context, round_data, documents, decided):
    decision, _ = decided
    honest = weighted_sum(aggregator_context, documents, decision.weights, D)
    values = key_holder.decrypt_aggregate(honest, D, updates=documents,
                                          weights=decision.weights)
    assert values.shape == (D,)
    # An aggregator that asks for update 0 times 1 instead of the aggregate:
    single = weighted_sum(aggregator_context, documents[:1], [1.0], D)
    assert np.max(np.abs(key_holder.decrypt_aggregate(single, D) - round_data[2][0])) < 1e-6
    with pytest.raises(HEError, match="not the weighted sum"):
        key_holder.decrypt_aggregate(single, D, updates=documents, weights=decision.weights)
    with pytest.raises(HEError, match="must hold 9001 values"):
        key_holder.decrypt_aggregate(honest, D + 1)


def test_aggregator_results_are_deterministic(aggregator_context, round_data, documents):
    global_params, server, _ = round_data
    reference = server.astype(np.float64) - global_params
    decoded = [decode_update(aggregator_context, doc, D) for doc in documents[:3]]
    assert isinstance(decoded[0], EncryptedUpdate)
    first = encrypted_scalars(aggregator_context, decoded, reference, seed=5)
    assert encrypted_scalars(aggregator_context, documents[:3], reference, seed=5) == first
    # Without a seed, the projections' directions are fresh each time: nobody can aim at them.
    assert encrypted_scalars(aggregator_context, decoded, reference) != \
        encrypted_scalars(aggregator_context, decoded, reference)
    weights = [0.5, 0.0, 0.25]
    assert weighted_sum(aggregator_context, decoded, weights, D) == \
        weighted_sum(aggregator_context, documents[:3], weights, D)
    with pytest.raises(ConfigError, match="differ in number"):
        weighted_sum(aggregator_context, documents[:3], [0.5, 0.5], D)
    with pytest.raises(ConfigError, match="every weight is 0"):
        weighted_sum(aggregator_context, documents[:3], [0.0, 0.0, 0.0], D)


def test_participants_cannot_encrypt_what_the_context_cannot_carry(aggregator_context):
    with pytest.raises(HEError, match="NaN"):
        encrypt_update(aggregator_context, [0.0, float("nan")])


def test_a_long_delta_is_shortened_to_the_cap_and_the_round_is_the_same(key_holder):
    """``encrypt_update`` shortens a delta longer than half ``sqrt(max_squared_norm)`` (512)
    to that length, clear of the cap whatever the CKKS error: the key holder does not mark it
    (it marks anything above the cap), and FLTrust, which rescales every update to |g0|,
    decides the round as on the unshortened vectors. A delta of huge finite values is
    shortened too, not zeroed by an overflowing norm."""
    context = key_holder.public
    assert context.max_squared_norm == pytest.approx(2.0 ** 20, rel=1e-9)
    rng = np.random.default_rng(4)
    global_params = np.zeros(D)
    g0 = rng.normal(0, 0.01, D)
    deltas = [g0 * 1e5 + rng.normal(0, 50, D), g0 + rng.normal(0, 0.005, D)]  # |d0| ~ 5e3
    assert np.linalg.norm(deltas[0]) ** 2 > 10 * context.max_squared_norm
    documents = [encrypt_update(context, delta) for delta in deltas]
    scalars = key_holder.decrypt_scalars(encrypted_scalars(context, documents, g0, seed=3))
    assert scalars.squared_norms[0] == pytest.approx(context.max_squared_norm / 4, rel=1e-6)
    assert not scalars.implausible.any()
    decision, delta = fltrust_round(key_holder, global_params, documents, global_params + g0)
    _, expected = numpy_fltrust(global_params, global_params + g0, np.array(deltas))
    assert decision.accepted == (0, 1)
    np.testing.assert_allclose(delta, expected, atol=1e-6)
    huge = encrypt_update(context, np.full(100, 1e200))  # its squared norm overflows
    values = key_holder.decrypt_aggregate(weighted_sum(context, [huge], [1.0], 100), 100)
    np.testing.assert_allclose(values, np.full(100, 51.2), rtol=1e-6)


def test_key_pairs_are_checked(key_holder, other_key_holder):
    with pytest.raises(HEError, match="different keys|do not match"):
        KeyHolder(key_holder.secret_context, other_key_holder.public_context)
    with pytest.raises(HEError, match="no secret key"):
        KeyHolder(key_holder.public_context, key_holder.public_context)
    with pytest.raises(HEError, match="not a TenSEAL context"):
        PublicContext(b"not a context")
    with pytest.raises(ConfigError, match="bits"):
        CKKSParameters(coeff_mod_bit_sizes=(60, 60, 60, 60))  # 240 > 218 bits


def test_the_rule_refuses_scalars_no_real_vector_has():
    scalars = RoundScalars(dots=np.array([1.0, 5.0, 1.0, float("nan"), 1.0, 0.5]),
                           squared_norms=np.array([4.0, 4.0, -1.0, 1.0, 1e-14, 1.0]))
    decision = fltrust_weights(scalars, reference_norm=1.0, sample_weights=[1, 1, 1, 1, 1, 0])
    assert decision.accepted == (0,)
    assert dict(decision.reasons) == {1: Reason.NON_FINITE,  # cos 2.5: Cauchy-Schwarz
                                      2: Reason.NON_FINITE,  # negative squared norm
                                      3: Reason.NON_FINITE, 4: Reason.FREE_RIDER,
                                      5: Reason.NO_SAMPLES}
    assert decision.weights[0] == pytest.approx(0.5)  # |g0| / |delta_0|


def test_sample_weights_keep_the_aggregate_within_the_reference_norm():
    scalars = RoundScalars(dots=np.array([1.0, 2.0, -1.0]),
                           squared_norms=np.array([4.0, 16.0, 1.0]))
    plain = fltrust_weights(scalars, reference_norm=2.0)
    weighted = fltrust_weights(scalars, reference_norm=2.0, sample_weights=[30, 10, 5])
    for decision in (plain, weighted):
        assert decision.accepted == (0, 1)
        # Each delta rescaled to |g0| = 2, then a convex combination: total pull 2.
        assert float(np.sum(decision.weights * np.nan_to_num(decision.norms))) == \
            pytest.approx(2.0)
    assert weighted.weights[0] / weighted.weights[1] == pytest.approx(
        3 * plain.weights[0] / plain.weights[1])


def test_nothing_accepted_keeps_the_global_model(key_holder, round_data, documents):
    global_params, server, _ = round_data
    decision, delta = fltrust_round(key_holder, global_params, [documents[SIGN_FLIP]], server)
    assert decision.accepted == () and not np.any(delta)
    result = decision.result(global_params, delta)
    np.testing.assert_array_equal(result.params, global_params)
    assert dict(result.reasons) == {0: Reason.ZERO_TRUST}
    # A zero reference: every update has zero trust, without any ciphertext arithmetic.
    decision, _ = fltrust_round(key_holder, global_params, documents[:2], global_params)
    assert dict(decision.reasons) == {0: Reason.ZERO_TRUST, 1: Reason.ZERO_TRUST}


def test_imaginary_slots_lengthen_their_senders_norm(key_holder, aggregator_context):
    """A participant that encrypts complex slots ``a + ib`` (not possible through
    encrypt_update, easy with SEAL): only ``a`` enters the inner product and the aggregate.
    The squared norm is ``sum(a^2 + b^2)`` (each chunk times its conjugate), so ``b``, here
    also in the padding past the update's length, only lowers its sender's cosine and weight.
    Squared chunks would have given ``sum(a^2 - b^2)``: this update, at cosine 0.1, would
    have passed for 0.9 and pulled several times ``|g0|``."""
    slots = aggregator_context.slots
    size = slots - 96  # the last 96 slots are padding
    rng = np.random.default_rng(3)
    global_params = np.zeros(size)
    g0 = rng.normal(0, 0.01, size)
    unit = g0 / np.linalg.norm(g0)
    other = rng.normal(size=size)
    other -= (other @ unit) * unit
    other /= np.linalg.norm(other)
    real = np.zeros(slots)
    real[:size] = 10 * np.linalg.norm(g0) * (0.1 * unit + np.sqrt(0.99) * other)  # cos 0.1
    imaginary = rng.normal(size=slots)
    imaginary *= np.sqrt(real @ real - ((real[:size] @ g0) / (0.9 * np.linalg.norm(g0))) ** 2
                         ) / np.linalg.norm(imaginary)  # sum(a^2 - b^2) would give cos 0.9
    seal_context = aggregator_context.tenseal_context.seal_context().data
    plaintext, crafted = sealapi.Plaintext(), sealapi.Ciphertext()
    sealapi.CKKSEncoder(seal_context).encode(
        [complex(a, b) for a, b in zip(real, imaginary, strict=True)],
        seal_context.first_parms_id(), aggregator_context.scale, plaintext)
    sealapi.Encryptor(seal_context, aggregator_context.tenseal_context.data.public_key()
                      ).encrypt(plaintext, crafted)
    document = pack({"chunks": 1, "context": aggregator_context.fingerprint,
                     "format": "fairfl-ckks-update/2", "length": size, "slots": slots},
                    ciphertext_bytes([crafted]))
    honest = encrypt_update(aggregator_context, g0 + rng.normal(0, 0.005, size))
    scalars = key_holder.decrypt_scalars(encrypted_scalars(aggregator_context, [document], g0))
    assert scalars.dots[0] == pytest.approx(real[:size] @ g0, rel=1e-6)
    assert scalars.squared_norms[0] == pytest.approx(real @ real + imaginary @ imaginary,
                                                     rel=1e-6)
    decision, delta = fltrust_round(key_holder, global_params, [honest, document], g0)
    assert decision.accepted == (0, 1)
    assert decision.cosines[1] == pytest.approx(
        0.1 * np.linalg.norm(real) / np.hypot(np.linalg.norm(real), np.linalg.norm(imaginary)),
        rel=1e-6)  # below its real part's 0.1
    assert decision.norms[1] > np.linalg.norm(real)
    # What it adds to the aggregate is shorter than its trust's share of |g0|: no bound needed.
    assert decision.weights[1] * np.linalg.norm(real) < (
        decision.trust[1] / decision.trust.sum() * np.linalg.norm(g0))
    assert np.linalg.norm(delta) <= np.linalg.norm(g0) * (1 + 1e-6)
    np.testing.assert_array_equal(decision.bounded(delta), delta)


def test_the_aggregator_needs_the_rotation_and_conjugation_keys(key_holder):
    """``missing_galois_keys`` names the Galois keys the scalars need and a key set lacks; a
    key set made by SEAL for the rotations alone lacks the conjugation."""
    keys = key_holder.public.tenseal_context.data.galois_keys()
    degree = key_holder.public.poly_modulus_degree
    assert missing_galois_keys(keys, degree) == []
    secret = key_holder._secret.seal_context().data
    rotations_only = sealapi.GaloisKeys()
    sealapi.KeyGenerator(secret, key_holder._secret.secret_key().data).create_galois_keys(
        [pow(3, 2 ** k, 2 * degree) for k in range(int(np.log2(degree)) - 2, -1, -1)],
        rotations_only)
    assert missing_galois_keys(rotations_only, degree) == ["complex conjugation"]
    conjugation_only = sealapi.GaloisKeys()
    sealapi.KeyGenerator(secret, key_holder._secret.secret_key().data).create_galois_keys(
        [2 * degree - 1], conjugation_only)
    assert len(missing_galois_keys(conjugation_only, degree)) == 12


def test_a_context_without_those_keys_is_refused_before_any_arithmetic(key_holder, documents,
                                                                         monkeypatch):
    import fl_agent.privacy.he_context as he_context

    monkeypatch.setattr(he_context, "missing_galois_keys", lambda keys, degree: [
        "complex conjugation"])
    context = PublicContext(key_holder.public_context)  # a fresh one: no evaluator yet
    with pytest.raises(HEError, match="no Galois key for complex conjugation"):
        encrypted_scalars(context, documents[:1], np.ones(D))


def test_released_values_carry_noise_above_the_ckks_error(key_holder, aggregator_context,
                                                          documents):
    """Exact decryptions of ciphertexts the aggregator made would leak the secret key
    (Li-Micciancio); the key holder adds 2^-30 noise to whatever it releases."""
    document = weighted_sum(aggregator_context, documents[:1], [1.0], D)
    first, second = (key_holder.decrypt_aggregate(document, D) for _ in range(2))
    assert not np.array_equal(first, second)
    assert np.std(first - second) == pytest.approx(np.sqrt(2) * 2.0 ** -30, rel=0.1)
    exact = KeyHolder(key_holder.secret_context, key_holder.public_context, release_noise=0)
    assert np.array_equal(exact.decrypt_aggregate(document, D),
                          exact.decrypt_aggregate(document, D))


@pytest.mark.parametrize("kind", ["hidden", "padding", "imaginary", "split", "largest"])
def test_a_squared_norm_wrapped_around_the_modulus_is_refused(key_holder, kind):
    """A crafted ciphertext ``v + h`` with ``|h|^2`` one wrap period ``W`` (about 2^40):
    its squared norm decrypts to ``|v|^2``, so FLTrust alone trusts it and, for ``h`` among
    the update's values and orthogonal to g0 (the attacker is granted g0), lets ``h`` take the
    round (the control, without the key holder's flags). The random projections see ``|h|``
    and the key holder marks it implausible, on every projection seed tried; the honest
    updates of the same rounds are never marked."""
    from benchmarks.privacy_he_wrap import LENGTH, wrapped_update

    context = key_holder.public
    assert context.wrap_period == pytest.approx(2.0 ** 40, rel=1e-9)
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        g0 = rng.normal(0, 0.01, LENGTH)
        norm = float(np.linalg.norm(g0))
        honest = [g0 * rng.uniform(0.5, 2.0) + rng.normal(0, 0.01, LENGTH) for _ in range(3)]
        visible = 0.9 * g0 + rng.normal(0, 0.005, LENGTH)
        claimed = 0.99 * context.max_squared_norm if kind == "largest" \
            else float(visible @ visible)
        crafted, real = wrapped_update(context, visible, g0, kind, rng, claimed=claimed)
        documents = [*(encrypt_update(context, delta) for delta in honest), crafted]
        scalars = key_holder.decrypt_scalars(encrypted_scalars(context, documents, g0,
                                                               seed=seed))
        # The premise: the squared norm wrapped around to what the attacker chose.
        assert scalars.squared_norms[3] == pytest.approx(claimed, rel=0.1)
        assert scalars.implausible.tolist() == [False, False, False, True]
        decision = fltrust_weights(scalars, norm)
        assert decision.accepted == (0, 1, 2)
        assert dict(decision.reasons) == {3: Reason.NORM_OUTLIER}
        blind = fltrust_weights(RoundScalars(scalars.dots, scalars.squared_norms), norm)
        assert blind.accepted == (0, 1, 2, 3)  # what the check prevents
        if kind in ("hidden", "split", "largest"):
            step = np.asarray([*honest, real]).T @ blind.weights
            honest_step = np.asarray(honest).T @ decision.weights[:3]
            assert np.linalg.norm(step) > 100 * norm  # h takes the round...
            bounded = step * norm / np.linalg.norm(step)  # ...even held to |g0|
            assert abs(bounded @ honest_step) < 0.05 * norm * np.linalg.norm(honest_step)


def test_projections_are_independent_normals_of_the_true_squared_norm(key_holder):
    """For any update, honest or crafted, complex slots and padding included, the four
    projections are independent normal variables of variance the true squared norm (of the
    complex slots): each divided by the norm is N(0, 1), and they are uncorrelated. So the
    sum of their squares over the squared norm follows chi-squared with 4 degrees, the law
    the key holder's bound is the 1 - 1e-9 quantile of. 60 updates of two chunks, some with
    imaginary parts, some with all their mass in one value of the second chunk. Fails if the
    directions were scaled by sqrt(2), or one direction served all four projections."""
    from benchmarks.privacy_he_wrap import crafted_update

    context = key_holder.public
    rng = np.random.default_rng(8)
    size = 2 * context.slots
    documents, norms = [], []
    for i in range(60):
        values = np.zeros(size, dtype=np.complex128)
        if i % 4 == 0:
            values[context.slots + rng.integers(context.slots)] = rng.normal() * 5
        else:
            values[:] = rng.normal(size=size) * rng.uniform(0.01, 3)
            if i % 4 == 3:
                values += 1j * rng.normal(size=size)
        documents.append(crafted_update(context, values, size - 7))
        norms.append(float(np.sqrt(np.vdot(values, values).real)))
    frames = unpack(encrypted_scalars(context, documents, np.ones(size - 7), seed=1),
                    "fairfl-ckks-scalars/2",
                    {"context": str, "projections": int, "updates": int}, 10**7)[1]
    z = np.array([[key_holder._decrypt(frames[6 * i + 2 + j], context.slots, "p").mean()
                   / norms[i] for j in range(4)] for i in range(60)])
    assert abs(z.mean()) < 3 / np.sqrt(240)
    assert abs(np.mean(z ** 2) - 1) < 3 * np.sqrt(2 / 240)
    correlations = np.corrcoef(z.T)[np.triu_indices(4, 1)]
    assert np.max(np.abs(correlations)) < 4 / np.sqrt(60)
    assert np.max(np.sum(z ** 2, axis=1)) < 47.9  # none near the bound


def test_a_squared_norm_above_what_participants_encrypt_is_implausible(key_holder):
    """A crafted ciphertext whose squared norm (2^21, not wrapped) is above the 2^20 that
    ``encrypt_update`` ever encrypts: its projections agree with it, but the key holder marks
    it, since nothing honest decrypts to it, and a wrapped norm claiming that much would be
    only about 2^19 times too short."""
    from benchmarks.privacy_he_wrap import crafted_update

    context = key_holder.public
    rng = np.random.default_rng(9)
    values = rng.normal(size=context.slots)
    values *= np.sqrt(2.0 ** 21) / np.linalg.norm(values)
    crafted = crafted_update(context, values, context.slots)
    honest = encrypt_update(context, values)  # shortened to a norm of 2^9
    scalars = key_holder.decrypt_scalars(encrypted_scalars(context, [crafted, honest],
                                                           np.ones(context.slots)))
    assert scalars.squared_norms.tolist() == pytest.approx([2.0 ** 21, 2.0 ** 18], rel=1e-6)
    assert scalars.implausible.tolist() == [True, False]
    decision = fltrust_weights(scalars, 1.0)
    assert dict(decision.reasons) == {0: Reason.NORM_OUTLIER}


def test_the_key_holder_refuses_scalars_without_the_projections(key_holder, aggregator_context,
                                                                documents):
    """An aggregator that leaves the projections out cannot have the squared norms believed:
    the key holder refuses the document rather than release unchecked norms."""
    document = encrypted_scalars(aggregator_context, documents[:2], np.ones(D), seed=2)
    _, frames = unpack(document, "fairfl-ckks-scalars/2",
                       {"context": str, "projections": int, "updates": int}, 10**7)
    for projections, kept in ((0, [0, 1, 6, 7]), (2, [0, 1, 2, 3, 6, 7, 8, 9])):
        stripped = pack({"context": key_holder.fingerprint, "format": "fairfl-ckks-scalars/2",
                         "projections": projections, "updates": 2}, [frames[k] for k in kept])
        with pytest.raises(HEError, match="against exactly 4"):
            key_holder.decrypt_scalars(stripped)
    old = pack({"context": key_holder.fingerprint, "format": "fairfl-ckks-scalars/1",
                "updates": 2}, frames[:4])  # version 1: no projections
    with pytest.raises(HEError, match="fairfl-ckks-scalars/2"):
        key_holder.decrypt_scalars(old)
    with pytest.raises(ConfigError, match="seed must be an integer >= 0"):
        encrypted_scalars(aggregator_context, documents[:2], np.ones(D), seed=-1)


def test_fltrust_refuses_what_the_key_holder_marked_implausible():
    """``norm_outlier`` for a squared norm the key holder marked, however well aligned its
    scalars look; the flags must be one boolean per update."""
    squared = np.array([1.0, 1.2, 0.8, 1.0])
    dots = 0.9 * np.sqrt(squared)  # cosine 0.9 with a unit g0
    flags = np.array([False, False, True, False])
    decision = fltrust_weights(RoundScalars(dots, squared, flags), 1.0)
    assert dict(decision.reasons) == {2: Reason.NORM_OUTLIER}
    assert fltrust_weights(RoundScalars(dots, squared), 1.0).accepted == (0, 1, 2, 3)
    with pytest.raises(ConfigError, match="implausible must be 4 booleans"):
        RoundScalars(dots, squared, np.zeros(3, dtype=bool))
    with pytest.raises(ConfigError, match="implausible must be 4 booleans"):
        RoundScalars(dots, squared, np.zeros(4))


def test_a_key_holders_attestation_must_be_its_own_signature_of_that_context():
    """A plan names its key holder's signature that it made the pair: the plan parses only
    if that account signed exactly this context; a creator cannot name another's."""
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from pydantic import ValidationError

    from fl_agent.privacy.plan import HEPlan, attestation_message

    holder, creator = Account.create(), Account.create()
    fingerprint, other = "ab" * 32, "cd" * 32

    def signed(by, fp: str, named: str) -> str:
        raw = by.sign_message(encode_defunct(text=attestation_message(fp, named))).signature
        return "0x" + bytes(raw).hex()

    plan = HEPlan(context_cid="cid", fingerprint=fingerprint, key_holder=holder.address,
                  attestation=signed(holder, fingerprint, holder.address))
    assert plan.attestation is not None
    for bad in (signed(creator, fingerprint, holder.address),  # the creator signs for it
                signed(holder, other, holder.address),  # the holder's word for another pair
                "0x" + "00" * 65):
        with pytest.raises(ValidationError, match="attestation"):
            HEPlan(context_cid="cid", fingerprint=fingerprint, key_holder=holder.address,
                   attestation=bad)
    assert HEPlan(context_cid="cid", fingerprint=fingerprint,
                  key_holder=creator.address).attestation is None  # the creator's own pair
