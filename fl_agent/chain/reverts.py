"""Naming the custom error in raw revert data (what a wallet or ``eth_call`` hands back).

ape names the errors of transactions it sends itself (:class:`ContractRevertError`); a
transaction sent by a browser wallet comes back as bare bytes. :func:`decode_revert` finds
the error among the FairFL contracts' ABIs (OpenZeppelin's ERC-20 errors included) and
decodes its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode
from eth_utils import keccak

from fl_agent.chain.deployment import CONTRACTS


@dataclass(frozen=True)
class Revert:
    name: str
    args: dict[str, Any]


def error_table(project: Any) -> dict[bytes, Any]:
    """Selector -> ErrorABI for every custom error of the FairFL contracts."""
    table = {}
    for name in CONTRACTS:
        for error in getattr(project, name).contract_type.errors:
            table[keccak(text=error.selector)[:4]] = error
    return table


def decode_revert(data: bytes | str | None, table: dict[bytes, Any]) -> Revert | None:
    """The custom error in ``data``, or None when it is not one of ours (or empty)."""
    if data is None:
        return None
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) \
        else bytes(data)
    error = table.get(raw[:4])
    if error is None:
        return None
    types = [i.canonical_type for i in error.inputs]
    try:
        values = decode(types, raw[4:])
    except Exception:  # noqa: BLE001 - truncated data: the name is still worth reporting
        return Revert(error.name, {})
    return Revert(error.name, {i.name: v for i, v in zip(error.inputs, values, strict=True)})
