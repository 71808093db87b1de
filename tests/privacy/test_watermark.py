"""Ownership watermarks: keys, commitments, embedding by gradient hook, verification."""

from __future__ import annotations

import json
import math
import stat

import numpy as np
import pytest
import torch
from eth_abi import encode as abi_encode
from eth_utils import keccak

from fl_agent.errors import ConfigError
from fl_agent.learning.data import load_dataset, split_dataset
from fl_agent.learning.models import ModelSpec, init_params, model_from_vector, param_count
from fl_agent.learning.training import evaluate, train_local
from fl_agent.privacy.watermark import (
    DEFAULT_BITS,
    DOMAIN,
    WatermarkKey,
    carrier,
    commitment,
    derive,
    embed_hook,
    false_match_probability,
    read_bits,
    verify,
)

MLP = ModelSpec(name="mlp", input_shape=(64,), num_classes=10)
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20


def key(byte: int, bits: int = 64, layer: str | None = None) -> WatermarkKey:
    return WatermarkKey(bytes([byte]) * 32, bits, layer)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return split_dataset(load_dataset("digits"), seed=0)


@pytest.fixture(scope="module")
def trained(digits):
    """The same 300 steps from the same start, without and with key 7's watermark (the
    default bit count, margin and strength)."""
    start = init_params(MLP, seed=3)
    plain = train_local(MLP, start, digits.train.X, digits.train.y, 300, seed=0).vector
    marked = train_local(MLP, start, digits.train.X, digits.train.y, 300, seed=0,
                         gradient_hook=embed_hook(MLP, key(7, DEFAULT_BITS))).vector
    return start, plain, marked


def test_derivation_is_deterministic_and_specific_to_the_key():
    first, again = derive(MLP, key(1)), derive(MLP, key(1))
    assert np.array_equal(first.projection, again.projection)
    assert np.array_equal(first.signature, again.signature)
    other = derive(MLP, key(2))
    assert not np.array_equal(first.signature, other.signature)
    # Independent draws: the two projections are nearly orthogonal, row by row.
    cosines = np.sum(first.projection * other.projection, axis=1) / (
        np.linalg.norm(first.projection, axis=1) * np.linalg.norm(other.projection, axis=1))
    assert np.abs(cosines).max() < 0.1
    assert set(np.unique(first.signature)) == {-1, 1}
    assert first.projection.shape == (64, 64 * 64)
    assert np.linalg.norm(first.projection, axis=1) == pytest.approx(1.0, abs=0.05)
    # The bit count and the carrier are part of what the key stands for.
    longer = derive(MLP, key(1, bits=96))
    assert np.array_equal(longer.signature[:64], first.signature)  # a longer HKDF stream
    out = derive(MLP, key(1, layer="out.weight"))
    assert out.slot.name == "out.weight" and out.projection.shape == (64, 640)


def test_the_carrier_is_the_largest_weight_unless_the_key_names_one():
    assert carrier(MLP)[1].name == "fc1.weight"
    logreg = ModelSpec(name="logreg", input_shape=(64,), num_classes=10)
    assert carrier(logreg)[1].name == "linear.weight"
    cnn = ModelSpec(name="cnn", input_shape=(1, 8, 8), num_classes=10)
    assert carrier(cnn) == (4, carrier(cnn, "out.weight")[1])  # 10 x 512 > conv2's 4,608
    with pytest.raises(ConfigError, match="no parameter 'fc9.weight'"):
        carrier(MLP, "fc9.weight")


def test_commitment_binds_key_account_and_task():
    base = commitment(key(1), ALICE, 5)
    assert len(base) == 32 and base == commitment(key(1), ALICE.upper().replace("0X", "0x"), 5)
    variants = {commitment(key(2), ALICE, 5), commitment(key(1), BOB, 5),
                commitment(key(1), ALICE, 6), commitment(key(1, bits=32), ALICE, 5),
                commitment(key(1, layer="out.weight"), ALICE, 5)}
    assert base not in variants and len(variants) == 5
    # What a contract recomputes: keccak256(abi.encode(DOMAIN, account, taskId, key, bits, layer)).
    expected = keccak(abi_encode(["bytes32", "address", "uint256", "bytes32", "uint256", "string"],
                                 [DOMAIN, ALICE, 5, bytes([1]) * 32, 64, ""]))
    assert base == expected and DOMAIN == keccak(text="FairFL.watermark.v1")
    for account, task in (("0x1234", 5), (ALICE, -1), (ALICE, True), (ALICE, 2**256)):
        with pytest.raises(ConfigError):
            commitment(key(1), account, task)


def test_the_hook_adds_the_hinge_gradient_exactly():
    strength, margin = 0.7, 0.2
    mark = derive(MLP, key(3))
    model = model_from_vector(MLP, init_params(MLP, seed=0))
    parameters = list(model.parameters())
    for p in parameters:
        p.grad = torch.zeros_like(p)
    embed_hook(MLP, key(3), strength, margin)(0, parameters)

    weight = parameters[0].detach().clone().requires_grad_(True)
    E = torch.from_numpy(mark.projection)
    b = torch.from_numpy(mark.signature.astype(np.float32))
    hinge = strength * torch.relu(margin - b * (E @ weight.reshape(-1))).sum()
    hinge.backward()
    assert torch.allclose(parameters[0].grad, weight.grad, atol=1e-6)
    assert weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() == 0 for p in parameters[1:])  # only the carrier


def test_a_reach_moves_the_bits_the_round_began_short_of_past_their_start():
    """At step 0 (the round's global model) some bits are short of the margin. FedIPR's hinge
    (no reach) stops pushing them once the local weights hold the margin; with a reach they
    are pushed on until they are ``reach`` past where the round began (at least to the
    margin), and no further; bits the round began with held are pushed only if they fall
    below the margin. Each round's step 0 sets the targets again."""
    margin, reach = 0.1, 0.35
    mark = derive(MLP, key(3))
    b = torch.from_numpy(mark.signature.astype(np.float64))
    E = torch.from_numpy(mark.projection).double()
    model = model_from_vector(MLP, init_params(MLP, seed=0))
    start = list(model.parameters())[0].detach().clone()
    begun = b * (E @ start.reshape(-1).double())
    begun[0] = -0.5  # one bit far below the margin: its target is the margin, not -0.15
    short = begun < margin
    assert 0 < int(short.sum()) < mark.signature.size and not short[1:].all()
    hooks = {"fedipr": embed_hook(MLP, key(3), 1.0, margin, None),
             "reach": embed_hook(MLP, key(3), 1.0, margin, reach)}

    def forces(hook, step, margins):
        """How hard ``hook`` pushes each bit at ``step`` on weights with ``margins``."""
        w = start.reshape(-1).double() + torch.linalg.lstsq(
            E, b * margins - E @ start.reshape(-1).double()).solution
        parameters = [p.detach().clone() for p in model.parameters()]
        parameters[0] = w.reshape(start.shape).float()
        for p in parameters:
            p.grad = torch.zeros_like(p)
        hook(step, parameters)
        grad = -parameters[0].grad.reshape(-1).double()
        return b * torch.linalg.lstsq(E.T, grad).solution  # each bit's push, signed

    pushed = lambda hook, step, margins: forces(hook, step, margins) > 1e-3  # noqa: E731
    for hook in hooks.values():  # step 0: both push exactly the bits short of the margin
        assert torch.equal(pushed(hook, 0, begun), short)
    target = torch.where(short, torch.clamp(begun + reach, min=margin), margin)
    assert target[0] == margin  # the far bit: at least to the margin, here just that
    halfway = torch.where(short, torch.clamp((begun + target) / 2, min=margin + 0.01), begun)
    halfway[0] = margin - 0.05  # the far bit is still short of its target, the margin
    assert not pushed(hooks["fedipr"], 5, halfway)[short & (halfway > margin)].any()
    assert torch.equal(pushed(hooks["reach"], 5, halfway), halfway < target)
    beyond = torch.where(short, target + 0.01, begun)  # every short bit past its target...
    held = torch.nonzero(~short)[0]
    beyond[held] = margin - 0.02  # ...and a bit the round began with, fallen below the margin
    assert torch.equal(pushed(hooks["reach"], 6, beyond), beyond < margin)
    # A new round from other weights sets the targets anew from them: the short bits start
    # at 0, so their new targets are 0.35, above some of the old ones.
    again = torch.where(short, torch.zeros_like(begun), begun)
    renewed = torch.where(short, reach, margin)
    assert torch.equal(pushed(hooks["reach"], 0, again), short)
    between = torch.where(short, reach - 0.05, begun)  # short of the new targets
    assert (between[short] > target[short]).any()  # past some old ones (bit 0's 0.1)
    assert torch.equal(pushed(hooks["reach"], 1, between), between < renewed)
    with pytest.raises(ConfigError, match="reach"):
        embed_hook(MLP, key(3), reach=0.0)


def test_given_the_learning_rate_a_bit_is_pushed_no_further_than_its_target():
    """With the optimizer's lr, each bit's push is cut to what reaches its target in one
    SGD step: full strength when it is farther than lr * strength, a fraction when nearer,
    none once there. Checked by taking that step (plain SGD, no loss) and reading the bits."""
    margin, reach, lr, strength = 0.05, 0.25, 0.05, 2.0
    mark = derive(MLP, key(3, DEFAULT_BITS))
    b = torch.from_numpy(mark.signature.astype(np.float64))
    E = torch.from_numpy(mark.projection).double()
    model = model_from_vector(MLP, init_params(MLP, seed=0))
    weight = list(model.parameters())[0]
    begun = b * (E @ weight.detach().reshape(-1).double())
    target = torch.where(begun < margin, torch.clamp(begun + reach, min=margin), margin)
    hook = embed_hook(MLP, key(3, DEFAULT_BITS), strength, margin, reach, lr=lr)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    moves = []
    for step in range(20):
        optimizer.zero_grad(set_to_none=False)
        hook(step, list(model.parameters()))
        optimizer.step()
        now = b * (E @ weight.detach().reshape(-1).double())
        moves.append(now)
    final = moves[-1]
    short = begun < margin
    # Short bits end at their targets (E's rows are nearly, not exactly, orthogonal).
    assert torch.allclose(final[short], target[short], atol=0.02)
    assert (final[short] <= target[short] + 0.02).all()  # no overshoot
    assert torch.allclose(moves[-2][short], final[short], atol=1e-3)  # and they stay
    free = embed_hook(MLP, key(3, DEFAULT_BITS), strength, margin, reach)  # no lr: pushes on
    model2 = model_from_vector(MLP, init_params(MLP, seed=0))
    optimizer2 = torch.optim.SGD(model2.parameters(), lr=0.5)
    for step in range(20):
        optimizer2.zero_grad(set_to_none=False)
        free(step, list(model2.parameters()))
        optimizer2.step()
    overshot = b * (E @ list(model2.parameters())[0].detach().reshape(-1).double())
    assert (overshot[short] - target[short]).max() > 0.3  # lr 0.5 without the cut: far past


def test_embedding_raises_the_match_rate_to_verified(trained, digits):
    start, plain, marked = trained
    marking = key(7, DEFAULT_BITS)
    before = verify(MLP, start, marking)
    assert 0.25 <= before.match_rate <= 0.75 and not before.verified
    assert not verify(MLP, plain, marking).verified  # training alone does not write it
    after = verify(MLP, marked, marking)
    assert after.match_rate >= 0.9 and after.p_value < 1e-6 and after.verified
    assert after.matched == round(after.match_rate * DEFAULT_BITS) and after.bits == DEFAULT_BITS
    # The mark costs the task little.
    assert evaluate(MLP, marked, digits.test.X, digits.test.y) > \
        evaluate(MLP, plain, digits.test.X, digits.test.y) - 0.03


def test_a_wrong_key_matches_about_half_and_is_not_verified(trained):
    _, _, marked = trained
    results = [verify(MLP, marked, key(100 + i, DEFAULT_BITS)) for i in range(12)]
    assert not any(r.verified for r in results)
    assert all(r.p_value > 1e-3 for r in results)
    assert 0.4 <= np.mean([r.match_rate for r in results]) <= 0.6


def test_binomial_tail_by_hand():
    # X ~ Binomial(4, 1/2): P[X = k] = C(4, k) / 16 = 1, 4, 6, 4, 1 (/ 16).
    assert false_match_probability(4, 4) == pytest.approx(1 / 16)
    assert false_match_probability(3, 4) == pytest.approx(5 / 16)
    assert false_match_probability(2, 4) == pytest.approx(11 / 16)
    assert false_match_probability(1, 4) == pytest.approx(15 / 16)
    assert false_match_probability(0, 4) == pytest.approx(1.0)
    # 30 of 32: (C(32,30) + C(32,31) + 1) / 2**32.
    assert false_match_probability(30, 32) == pytest.approx((496 + 32 + 1) / 2**32, rel=1e-9)
    for matched, bits in ((5, 4), (-1, 4), (1, 0)):
        with pytest.raises(ConfigError):
            false_match_probability(matched, bits)


def crafted(bits: int, matched: int) -> tuple[WatermarkKey, np.ndarray]:
    """A key and a model whose projection matches exactly ``matched`` signature bits."""
    k = key(9, bits)
    mark = derive(MLP, k)
    target = mark.signature.astype(np.float64) * 0.5
    target[:bits - matched] *= -1
    E = mark.projection.astype(np.float64)
    vector = np.zeros(param_count(MLP), dtype=np.float32)
    vector[:mark.slot.size] = E.T @ np.linalg.solve(E @ E.T, target)  # E w = target
    return k, vector


@pytest.mark.parametrize(("bits", "matched", "verified"), [
    (64, 58, True),    # 0.906 >= 0.9 and a tail of 1e-11
    (64, 57, False),   # 0.89 < 0.9
    (32, 30, True),    # 0.94 and 1.2e-7
    (32, 29, False),   # 0.906, but the tail is 1.3e-6 >= 1e-6
    (20, 20, True),    # 2**-20 < 1e-6
    (16, 16, False),   # 2**-16: 16 bits can never verify
])
def test_the_verdict_needs_both_the_match_rate_and_the_tail(bits, matched, verified):
    k, vector = crafted(bits, matched)
    result = verify(MLP, vector, k)
    assert result.matched == matched and result.bits == bits
    assert result.match_rate == pytest.approx(matched / bits)
    assert result.p_value == pytest.approx(false_match_probability(matched, bits))
    assert result.verified is verified
    assert np.sum(read_bits(MLP, vector, k) == derive(MLP, k).signature) == matched


def test_key_files_round_trip_and_are_private(tmp_path):
    k = WatermarkKey.generate(bits=32)
    path = tmp_path / "keys" / "watermark.json"
    k.save(path)
    assert WatermarkKey.load(path) == k
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document == {"version": 1, "key": k.secret.hex(), "bits": 32}
    assert k.secret.hex() not in repr(k) and "hidden" in repr(k)
    named = WatermarkKey(k.secret, 32, "out.weight")
    assert WatermarkKey.from_json(named.to_json()) == named
    assert WatermarkKey.generate().secret != WatermarkKey.generate().secret


GOOD = {"version": 1, "key": "ab" * 32, "bits": 64}


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "is JSON"),
    (b"\xff\xfe", "is JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"version": 1, "key": "ab" * 32}), "missing bits"),
    (json.dumps({**GOOD, "pickle": "x"}), "unknown pickle"),
    (json.dumps({**GOOD, "version": 2}), "version 2 is not supported"),
    (json.dumps({**GOOD, "version": True}), "version True"),
    (json.dumps({**GOOD, "key": "ab" * 31}), "64 hex digits"),
    (json.dumps({**GOOD, "key": 12}), "64 hex digits"),
    (json.dumps({**GOOD, "key": "zz" * 32}), "not hex"),
    (json.dumps({**GOOD, "bits": 4}), "bits must be an integer"),
    (json.dumps({**GOOD, "bits": "64"}), "bits must be an integer"),
    (json.dumps({**GOOD, "bits": True}), "bits must be an integer"),
    (json.dumps({**GOOD, "layer": ""}), "layer must be"),
])
def test_malformed_key_files_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        WatermarkKey.from_json(text)


def test_bad_arguments_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        WatermarkKey.load(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="32 bytes"):
        WatermarkKey(b"short")
    for bad in ({"strength": 0}, {"margin": -1.0}, {"strength": math.inf}, {"margin": True}):
        with pytest.raises(ConfigError):
            embed_hook(MLP, key(1), **bad)
    wider = ModelSpec(name="mlp", input_shape=(64,), num_classes=10, hidden=(32,))
    parameters = list(model_from_vector(wider, init_params(wider, seed=0)).parameters())
    with pytest.raises(ConfigError, match="carrier fc1.weight has shape"):
        embed_hook(MLP, key(1))(0, parameters)
    with pytest.raises(ConfigError):
        verify(MLP, np.zeros(10, dtype=np.float32), key(1))
    with pytest.raises(ConfigError):
        verify(MLP, init_params(MLP, seed=0), key(1), alpha=0.0)
