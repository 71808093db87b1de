import ape
import pytest
import ape_ethereum.trace as tr
from conftest import UNIT, CID_SPEC

@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setattr(tr.Trace, "show", lambda self, *a, **k: None)

def test_probe(chain, accounts, token, registry, ledger, tasks, trainers, owner, marketplace, attacker):
    p = registry.participant(trainers[0])
    print(type(p), type(p).__mro__, p.items() if hasattr(p, "items") else None, tuple(p))
    print(p == registry.participant(trainers[0]))
    l = marketplace.listing(1)
    print(l, tuple(l))
    registry.blacklist(attacker, "ev", sender=owner)
    with ape.reverts(registry.ParticipantRegistryBlacklisted, account=attacker.address):
        registry.register("x", sender=attacker)
    try:
        with ape.reverts(registry.ParticipantRegistryBlacklisted, account=owner.address):
            registry.register("x", sender=attacker)
    except AssertionError as e:
        print("good mismatch:", e)
    print(attacker.private_key[:6], chain.chain_id, chain.pending_timestamp)
    tx = token.grantRole(token.MINTER_ROLE(), owner, sender=owner)
    print(tx.block_number, chain.blocks.height)
