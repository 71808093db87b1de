"""Watermark claims: what a claim document holds and what every reader can check of it.

The marked weights are built from the key's own projection (carrier weights along
``E^T b``), so that the test does not depend on training; embedding by training is
test_watermark.py's.
"""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pytest
from eth_utils import to_checksum_address

from fl_agent.chain.records import WatermarkClaim
from fl_agent.errors import ConfigError
from fl_agent.learning.models import ModelSpec, init_params
from fl_agent.learning.weights import encode_weights
from fl_agent.privacy.claims import (
    TaskFacts,
    WatermarkClaimDocument,
    check_claim,
    check_claims,
    make_claim,
)
from fl_agent.privacy.watermark import WatermarkKey, commitment, derive, verify

MLP = ModelSpec(name="mlp", input_shape=(64,), num_classes=10)
ALICE = to_checksum_address("0x" + "a1" * 20)
BOB = to_checksum_address("0x" + "b2" * 20)
TASK = 4
#: Task 4 gives every key 32 bits on the default carrier; Alice and Bob had updates accepted.
FACTS = TaskFacts(TASK, 32, frozenset({ALICE.lower(), BOB.lower()}))


def marked(key: WatermarkKey, base: np.ndarray) -> np.ndarray:
    """``base`` with its carrier set along the key's signature: every bit reads right."""
    mark = derive(MLP, key)
    vector = base.copy()
    slot = mark.slot
    vector[slot.offset:slot.offset + slot.size] = (
        0.05 * mark.projection.T.astype(np.float64) @ mark.signature).astype(vector.dtype)
    return vector


@pytest.fixture(scope="module")
def model():
    key = WatermarkKey(bytes([9]) * 32, 32)
    vector = marked(key, init_params(MLP, seed=1))
    plain = encode_weights(MLP, vector)
    return key, vector, plain


def claim(model, *, account=ALICE, key=None, plain=None, matched=None):
    own_key, vector, own_plain = model
    key = key or own_key
    result = verify(MLP, vector, key)
    document = make_claim(key, account, TASK, plain or own_plain, result)
    if matched is not None:
        document = document.model_copy(update={"matched": matched})
    return document


def check(document_or_raw, model, *, account=ALICE, committed=None, reread=True, **kw):
    key, vector, plain = model
    raw = (document_or_raw.to_json() if isinstance(document_or_raw, WatermarkClaimDocument)
           else document_or_raw)
    committed = committed if committed is not None else commitment(key, account, TASK)
    extra = {"spec": MLP, "vector": vector} if reread else {}
    kw.setdefault("task", FACTS)
    return check_claim(raw, claim_cid="bafkclaim", account=account, committed=committed,
                       model_sha256=hashlib.sha256(plain).digest(), **extra, **kw)


def test_an_honest_claim_is_verified_by_a_reader_of_the_model(model):
    result = check(claim(model), model)
    assert result.problems == ()
    assert result.verdict == "verified"
    assert result.rechecked.matched == 32 and result.rechecked.verified
    assert (result.reported_matched, result.reported_bits) == (32, 32)
    assert result.reported_p_value == pytest.approx(2.0 ** -32)


def test_without_the_model_a_reader_checks_the_key_against_the_commitment_only(model):
    result = check(claim(model), model, reread=False)
    assert result.verdict == "claimed" and result.rechecked is None


def test_the_document_round_trips_and_reveals_the_key(model):
    document = claim(model)
    again = WatermarkClaimDocument.from_json(document.to_json())
    assert again == document
    assert again.watermark_key() == model[0]


@pytest.mark.parametrize("tamper, problem", [
    ("other_key", "not the one committed"),
    ("other_account", "not 0x"),
    ("other_weights", "other weights"),
    ("too_few_bits", "only 20 of 32"),
    ("other_task", "claim on task 5"),
    ("short_key", "not of the task's kind"),
    ("own_carrier", "not of the task's kind"),
    ("no_contribution", "contributed no accepted update"),
    ("no_watermarks", "embeds no watermarks"),
])
def test_a_false_claim_is_rejected_by_a_reader_without_the_model(model, tamper, problem):
    key, vector, plain = model
    if tamper == "other_key":
        # A key that was never committed: the commitment on chain is the true key's.
        stolen = WatermarkKey(bytes([10]) * 32, 32)
        document = make_claim(stolen, ALICE, TASK, plain, verify(MLP, marked(stolen, vector),
                                                                 stolen))
        result = check(document, model, reread=False)
    elif tamper == "other_account":  # Bob's event naming Alice's document
        result = check(claim(model), model, account=BOB,
                       committed=commitment(key, BOB, TASK), reread=False)
    elif tamper == "other_weights":
        result = check(claim(model, plain=plain + b" "), model, reread=False)
    elif tamper == "too_few_bits":
        result = check(claim(model, matched=20), model, reread=False)
    elif tamper == "other_task":  # Alice's claim on task 5 replayed as one on task 4
        document = claim(model).model_copy(update={"task": 5})
        result = check(document, model, reread=False)
    elif tamper in ("short_key", "own_carrier"):  # cheaper keys to fit to a model
        cheap = (WatermarkKey(bytes([11]) * 32, 20) if tamper == "short_key"
                 else WatermarkKey(bytes([11]) * 32, 32, "fc1.bias"))
        document = make_claim(cheap, ALICE, TASK, plain, verify(MLP, marked(cheap, vector),
                                                                cheap))
        result = check(document, model, committed=commitment(cheap, ALICE, TASK),
                       reread=False)
    elif tamper == "no_contribution":
        result = check(claim(model), model,
                       task=TaskFacts(TASK, 32, frozenset({BOB.lower()})), reread=False)
    else:
        result = check(claim(model), model, task=TaskFacts(TASK, None, frozenset()),
                       reread=False)
    assert result.verdict == "rejected"
    assert any(problem in p for p in result.problems), result.problems


def test_a_claim_on_a_model_without_the_mark_fails_the_recheck(model):
    key, vector, plain = model
    unmarked = init_params(MLP, seed=2)
    document = claim(model, matched=32)  # the claimant lies about the bits
    raw = document.to_json()
    result = check_claim(raw, claim_cid="c", account=ALICE, task=FACTS,
                         committed=commitment(key, ALICE, TASK),
                         model_sha256=hashlib.sha256(plain).digest(), spec=MLP,
                         vector=unmarked)
    assert result.verdict == "rejected"
    assert "not verified" in result.problems[0]
    assert result.rechecked.matched < 28


def _hostile(**fields) -> bytes:
    good = {"format": "fairfl-watermark-claim/1", "task": TASK, "account": ALICE,
            "key": WatermarkKey(bytes([9]) * 32, 32).to_json(), "model_sha256": "00" * 32,
            "matched": 32, "bits": 32}
    return json.dumps({**good, **fields}).encode()


@pytest.mark.parametrize("raw, problem", [
    (None, "not in the store"),
    (b"\x80\x04pickle", "not a valid claim"),
    (b'{"format":"fairfl-watermark-claim/1"}', "not a valid claim"),
    (_hostile(key="[" * 100_000), "not a valid claim"),  # nesting past the recursion limit
    (_hostile(key='{"version": 1, "key": "' + "ab" * 32 + '", "bits": 99999}'),
     "not a valid claim"),
    (_hostile(matched=40), "reports 40 of 32 bits"),
    (_hostile(account="[red]x[/red]"), "not a valid claim"),
])
def test_a_hostile_claim_is_reported_not_raised(model, raw, problem):
    result = check(raw, model)
    assert result.verdict == "rejected" and any(problem in p for p in result.problems), \
        result.problems
    assert result.reported_p_value is None or 0 <= result.reported_p_value <= 1


def test_a_key_naming_a_carrier_the_model_lacks_fails_the_recheck_not_the_reader(model):
    key, vector, plain = model
    odd = WatermarkKey(bytes([9]) * 32, 32, "no.such.layer")
    document = make_claim(odd, ALICE, TASK, plain, verify(MLP, vector, key))
    result = check(document, model, committed=commitment(odd, ALICE, TASK),
                   task=TaskFacts(TASK, 32, frozenset({ALICE.lower()})))
    assert result.verdict == "rejected"  # not of the task's kind, and never verified
    assert result.rechecked is None


def test_a_claim_document_refuses_a_malformed_key_or_account(model):
    document = claim(model)
    good = document.model_dump()
    for field, value in [("key", '{"version": 1, "key": "zz", "bits": 32}'),
                         ("account", ALICE.lower()), ("model_sha256", "00" * 31)]:
        with pytest.raises(ConfigError):
            WatermarkClaimDocument.from_json(
                WatermarkClaimDocument.model_construct(**{**good, field: value}).to_json())


def test_check_claims_reads_each_event_s_document(model):
    key, vector, plain = model
    documents = {"bafkA": claim(model).to_json()}
    events = [WatermarkClaim(TASK, ALICE, commitment(key, ALICE, TASK), "bafkA", 10),
              WatermarkClaim(TASK, BOB, commitment(key, BOB, TASK), "bafkB", 11)]
    checks = check_claims(events, documents.get, task=FACTS,
                          model_sha256=hashlib.sha256(plain).digest())
    assert [c.verdict for c in checks] == ["claimed", "rejected"]
    assert [c.account for c in checks] == [ALICE, BOB]


def test_checking_a_claim_without_the_model_needs_neither_torch_nor_scipy():
    import subprocess

    code = ("import sys; import fl_agent.privacy.claims; "
            "print('torch' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
