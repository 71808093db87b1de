"""How a buyer pays: an allowance (``approve`` then ``buy``) or an EIP-2612 permit
(``buyWithPermit``, one transaction).

The marketplace accepts any ERC-20. A token supports the one-transaction path when it
implements EIP-2612 and publishes its EIP-712 domain (EIP-5267 ``eip712Domain``, as
OpenZeppelin's ``ERC20Permit`` does); otherwise the buyer approves first. The typed data
built here is signed by an ape account (``fl-agent market buy``) or by the buyer's browser
wallet (``eth_signTypedData_v4``, in the app).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: A permit is valid for this long after it is signed.
PERMIT_LIFETIME_SECONDS = 3600

_EIP712_DOMAIN_FIELDS = (("name", "string"), ("version", "string"), ("chainId", "uint256"),
                         ("verifyingContract", "address"), ("salt", "bytes32"))
_PERMIT_TYPE = [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"}]


@dataclass(frozen=True)
class PermitDomain:
    """The EIP-712 domain of a token, as its ``eip712Domain()`` reports it."""

    fields: int  # EIP-5267 bit mask of the fields present
    name: str
    version: str
    chain_id: int
    verifying_contract: str
    salt: bytes

    def as_typed_data(self) -> tuple[list[dict[str, str]], dict[str, Any]]:
        types, values = [], {}
        present = {"name": self.name, "version": self.version, "chainId": self.chain_id,
                   "verifyingContract": self.verifying_contract, "salt": "0x" + self.salt.hex()}
        for bit, (name, kind) in enumerate(_EIP712_DOMAIN_FIELDS):
            if self.fields >> bit & 1:
                types.append({"name": name, "type": kind})
                values[name] = present[name]
        return types, values


def permit_domain(token: Any) -> PermitDomain | None:
    """The token's EIP-712 domain if it supports permits (EIP-2612 with EIP-5267), else None.

    ``token`` is an ape contract instance; the calls are plain ``eth_call``s by selector, so
    the token's own ABI need not declare them."""
    from ape import chain
    from eth_abi import decode
    from eth_utils import function_signature_to_4byte_selector, to_checksum_address

    address = str(token.address)

    def call(signature: str, args: bytes = b"") -> bytes | None:
        try:
            data = function_signature_to_4byte_selector(signature) + args
            return bytes(chain.provider.web3.eth.call({"to": address, "data": data}))
        except Exception:  # noqa: BLE001 - a token without the function reverts or returns 0x
            return None

    raw = call("eip712Domain()")
    nonces = call("nonces(address)", bytes(32))
    if not raw or not nonces or len(nonces) != 32:
        return None
    try:
        fields, name, version, chain_id, contract, salt, _ = decode(
            ["bytes1", "string", "string", "uint256", "address", "bytes32", "uint256[]"], raw)
    except Exception:  # noqa: BLE001 - not an EIP-5267 answer
        return None
    return PermitDomain(fields[0], name, version, int(chain_id), to_checksum_address(contract),
                        bytes(salt))


def permit_typed_data(domain: PermitDomain, owner: str, spender: str, value: int, nonce: int,
                      deadline: int) -> dict[str, Any]:
    """The EIP-712 message of an EIP-2612 permit, as ``eth_signTypedData_v4`` takes it."""
    domain_types, domain_values = domain.as_typed_data()
    return {"types": {"EIP712Domain": domain_types, "Permit": _PERMIT_TYPE},
            "primaryType": "Permit", "domain": domain_values,
            "message": {"owner": owner, "spender": spender, "value": int(value),
                        "nonce": int(nonce), "deadline": int(deadline)}}


def split_signature(signature: bytes) -> tuple[int, bytes, bytes]:
    """``(v, r, s)`` of a 65-byte signature, with ``v`` as 27 or 28."""
    if len(signature) != 65:
        raise ValueError(f"a signature is 65 bytes, got {len(signature)}")
    v = signature[64]
    return (v + 27 if v < 27 else v), signature[:32], signature[32:64]
