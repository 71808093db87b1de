"""Wallet errors as the page sees them (through viem's EIP-1193 request) and the kind each
becomes for Python. The shapes are those wallets and nodes answer with: EIP-1193 codes at the
top, MetaMask's revert nested in ``data`` or ``data.originalError``, a node's code 3."""

from __future__ import annotations

import pytest

REVERT = "0xe450d38c" + "00" * 96  # ERC20InsufficientBalance(address,uint256,uint256)

CASES = [
    ({"code": 4001, "message": "User rejected the request."}, "rejected", 4001, None),
    ({"code": -32002, "message": "Request already pending"}, "pending", -32002, None),
    ({"code": 4902, "message": "Unrecognized chain ID"}, "unknown_chain", 4902, None),
    ({"code": 3, "message": "execution reverted", "data": REVERT}, "reverted", 3, REVERT),
    ({"code": -32603, "message": "Internal JSON-RPC error.",
      "data": {"code": 3, "message": "execution reverted", "data": REVERT}},
     "reverted", -32603, REVERT),
    ({"code": -32603, "message": "Internal JSON-RPC error.",
      "data": {"originalError": {"code": 3, "message": "execution reverted: no", "data": REVERT}}},
     "reverted", -32603, REVERT),
    ({"code": -32603, "message": "Internal JSON-RPC error.",
      "data": {"originalError": {"code": 4001, "message": "User denied"}}}, "rejected", 4001, None),
    ({"code": -32000, "message": "insufficient funds for gas * price + value"}, "rpc", -32000,
     None),
    ({"message": "something odd"}, "rpc", None, None),
]


@pytest.mark.parametrize(("error", "kind", "code", "data"), CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_error_kinds(run_js, error, kind, code, data):
    [result] = run_js([{"op": "classify", "error": error}])
    assert result == {"kind": kind, "code": code, "data": data}
