"""Task models readable by members only, updates by the aggregator only, and the keyring."""

from __future__ import annotations

import pytest

from fl_agent.crypto.envelopes import (
    Keyring,
    decrypt_model,
    encrypt_model,
    model_epoch,
    open_update,
    seal_update,
)
from fl_agent.crypto.sealing import SealingError, new_buyer_key, new_content_key

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20
MALLORY = "0x" + "c3" * 20


def test_a_member_reads_the_model_of_its_epoch_and_nobody_else_does():
    key = new_content_key()
    blob = encrypt_model(b"weights", key, epoch=3, task_id=7)
    assert model_epoch(blob) == 3
    assert decrypt_model(blob, {3: key}, task_id=7) == b"weights"
    with pytest.raises(SealingError, match="epoch 3"):
        decrypt_model(blob, {2: key}, task_id=7)
    with pytest.raises(SealingError):
        decrypt_model(blob, {3: new_content_key()}, task_id=7)


def test_a_model_is_bound_to_its_task_and_epoch():
    key = new_content_key()
    blob = encrypt_model(b"weights", key, epoch=1, task_id=7)
    with pytest.raises(SealingError):
        decrypt_model(blob, {1: key}, task_id=8)
    relabelled = blob[:5] + (2).to_bytes(4, "big") + blob[9:]  # claims epoch 2
    with pytest.raises(SealingError):
        decrypt_model(relabelled, {2: key}, task_id=7)


def test_the_initial_plain_model_passes_through():
    assert model_epoch(b"\x08\x00\x00safetensors") is None
    assert decrypt_model(b"plain", {}, task_id=1) == b"plain"


def test_an_update_opens_only_for_the_aggregator_its_sender_and_round():
    aggregator, aggregator_public = new_buyer_key()
    other, _ = new_buyer_key()
    sealed = seal_update(b"delta", aggregator_public, task_id=1, round_number=4,
                         participant=ALICE)
    assert open_update(sealed, aggregator, 1, 4, ALICE) == b"delta"
    assert open_update(sealed, aggregator, 1, 4, ALICE.upper().replace("0X", "0x")) == b"delta"
    with pytest.raises(SealingError):
        open_update(sealed, other, 1, 4, ALICE)
    with pytest.raises(SealingError, match="copied from another sender or round"):
        open_update(sealed, aggregator, 1, 4, MALLORY)  # Mallory resubmits Alice's blob
    with pytest.raises(SealingError, match="copied from another sender or round"):
        open_update(sealed, aggregator, 1, 5, ALICE)  # replayed in a later round
    with pytest.raises(SealingError, match="not sealed to the aggregator"):
        open_update(b"\x08\x00plain weights", aggregator, 1, 4, ALICE)
    with pytest.raises(SealingError, match="truncated"):
        open_update(sealed[:40], aggregator, 1, 4, ALICE)
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(SealingError):
        open_update(bytes(tampered), aggregator, 1, 4, ALICE)


def test_the_keyring_gives_each_member_every_epoch_so_far():
    (alice, alice_pub), (bob, bob_pub) = new_buyer_key(), new_buyer_key()
    _, aggregator_pub = new_buyer_key()
    keys = {1: new_content_key(), 2: new_content_key()}
    ring = Keyring.seal(5, 2, keys, {ALICE: alice_pub, BOB: bob_pub}, aggregator_pub)
    again = Keyring.from_json(ring.to_json())
    assert again == ring
    assert again.holders() == {ALICE, BOB}
    assert again.open(ALICE, alice) == keys
    assert again.open(BOB.upper().replace("0X", "0x"), bob) == keys
    with pytest.raises(SealingError, match="holds no key"):
        again.open(MALLORY, alice)
    with pytest.raises(SealingError):
        again.open(ALICE, bob)  # Bob cannot use Alice's entry


def test_a_blacklisted_member_left_out_of_the_new_epoch_cannot_read_new_models():
    (alice, alice_pub), (mallory, mallory_pub) = new_buyer_key(), new_buyer_key()
    _, aggregator_pub = new_buyer_key()
    keys = {1: new_content_key()}
    first = Keyring.seal(1, 1, keys, {ALICE: alice_pub, MALLORY: mallory_pub}, aggregator_pub)
    old_model = encrypt_model(b"round 3", keys[1], 1, task_id=1)
    keys[2] = new_content_key()
    rotated = Keyring.seal(1, 2, keys, {ALICE: alice_pub}, aggregator_pub)
    new_model = encrypt_model(b"round 4", keys[2], 2, task_id=1)
    mallory_keys = first.open(MALLORY, mallory)
    assert decrypt_model(old_model, mallory_keys, 1) == b"round 3"  # what it already had
    with pytest.raises(SealingError):
        decrypt_model(new_model, mallory_keys, 1)
    with pytest.raises(SealingError):
        rotated.open(MALLORY, mallory)
    assert decrypt_model(new_model, rotated.open(ALICE, alice), 1) == b"round 4"


@pytest.mark.parametrize("doc", [
    b"not json",
    b'{"format": "fairfl-keyring/9"}',
    b'{"format": "fairfl-keyring/1", "task": 1, "epoch": 1, "aggregator_key": "00", '
    b'"recipients": {}, "history": {}}',
    b'{"format": "fairfl-keyring/1", "task": 1, "epoch": 1, "aggregator_key": "' + b"11" * 32
    + b'", "recipients": {}, "history": {"1": "00"}}',
])
def test_a_malformed_keyring_is_refused(doc):
    with pytest.raises(SealingError):
        Keyring.from_json(doc)
