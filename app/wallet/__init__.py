"""The FairFL wallet: a Streamlit component that talks to the user's browser wallet.

It is a components v2 component (no iframe): its JS (``src/``, bundled into
``dist/wallet.js`` by ``make setup``) runs in the page and finds the wallet's injected
``window.ethereum``. Python builds every message, typed-data document and calldata; the
browser asks the wallet and answers with transaction hashes, signatures, public keys and
statuses only. Wallet keys stay in the wallet; the X25519 keys derived from a signature
(spec section 1) and the content keys of bought models stay in the page's memory.

Protocol. Python mounts the component on every run with at most one :class:`WalletRequest`
(``id``, ``action``, ``params``); the page runs each id exactly once, one at a time, however
often Streamlit reruns, and answers with a :class:`WalletResponse` ``{id, ok, result}`` or
``{id, ok: false, error: {code, kind, message, data}}``. The answer arrives as a new script
run: the page sets the component's state, which reruns the script. So a flow is driven like
this (one request in ``st.session_state``, the component mounted on every run, always with
the same ``key``)::

    state = wallet(st.session_state.get("wallet_request"), key="wallet", chain=chain)
    if (response := state.response_to(st.session_state.get("wallet_request"))) is not None:
        st.session_state.wallet_request = None        # or the flow's next request
        ...                                           # response.unwrap() or response.error

A request whose id was already answered is not run again: its answer comes back (from the
answers Python has seen in the session, or replayed by the page to a wallet mounted anew).
Send a new one to ask again (:meth:`WalletRequest.connect` and the other constructors make a
fresh id each call).

Actions and results: ``connect`` -> ``{account, chainId}``; ``ensure_chain`` ->
``{chainId}``; ``sign_message`` (EIP-191) -> ``{account, signature}``; ``derive_key`` ->
``{account, publicKey}``; ``sign_typed_data`` (``eth_signTypedData_v4``) ->
``{account, signature}``; ``send_transaction`` (after an ``eth_call`` dry run) -> ``{hash}``;
``decrypt_download`` -> ``{bytes, sha256, filename}`` and a file download in the browser.
Error kinds are listed in :data:`ERROR_HINTS`.

Dev-account mode (:class:`DevMode`) replaces the browser wallet by the local node's unlocked
dev accounts, so the app can be tried without MetaMask; it is refused on any chain but the
local one (:data:`LOCAL_CHAIN_ID`) and labelled in the page.
"""

from __future__ import annotations

import base64
import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import streamlit as st

from fl_agent.errors import ConfigError

#: anvil's chain id; the only chain where dev accounts are allowed.
LOCAL_CHAIN_ID = 31337
HERE = Path(__file__).resolve().parent
BUNDLE = HERE / "dist" / "wallet.js"
STYLE = HERE / "wallet.css"
COMPONENT_NAME = "fairfl_wallet"

Action = Literal["connect", "ensure_chain", "sign_message", "derive_key", "sign_typed_data",
                 "send_transaction", "decrypt_download"]
ErrorKind = Literal["no_wallet", "rejected", "unknown_chain", "pending", "reverted",
                    "wrong_key", "key_changed", "hash_mismatch", "bad_weights", "bad_request",
                    "rpc"]
Mode = Literal["injected", "dev", "none"]

#: What to tell the user for each error kind.
ERROR_HINTS: dict[str, str] = {
    "no_wallet": "No browser wallet found. Install MetaMask (or another browser wallet) and "
                 "reload the page; on the local chain you can use a dev account instead.",
    "rejected": "The request was rejected in your wallet. Try again when you are ready.",
    "unknown_chain": "Your wallet does not know this chain and did not add it. Add the "
                     "network in your wallet and try again.",
    "pending": "Your wallet is already showing a request: open the wallet and answer it first.",
    "reverted": "The contract would refuse this transaction, so nothing was sent.",
    "wrong_key": "The model does not open with the key your wallet derives: the seller's key "
                 "agent sealed the wrong key, or this is not the account that bought it. "
                 "Nothing was saved.",
    "key_changed": "Your wallet now derives a different key than the one you bought with "
                   "(another device, or a wallet whose signatures are not deterministic). "
                   "While the key is not delivered you can replace it; once delivered, only "
                   "the wallet that signed at purchase time can open it. Nothing was saved.",
    "hash_mismatch": "The decrypted model is not the one the listing commits to; nothing was "
                     "saved.",
    "bad_weights": "The decrypted file does not hold the tensors the listing describes; "
                   "nothing was saved.",
    "bad_request": "The app sent the wallet a request it cannot run (a bug in the app).",
    "rpc": "The wallet reported an error.",
}

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^0x([0-9a-fA-F]{2})*$")


class WalletBundleMissing(FileNotFoundError):
    """The component's JS bundle was not built."""


def _address(name: str, value: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ConfigError(f"{name} must be a 0x-prefixed 20-byte hex address, got {value!r}")
    return value


def _hex(name: str, value: bytes | str) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and _HEX.match(value):
        return value
    raise ConfigError(f"{name} must be bytes or 0x-prefixed hex, got {value!r}")


#: Integers beyond this lose precision as JSON numbers in the browser.
_JS_SAFE_INTEGER = 2**53 - 1


def _browser_json(value: Any) -> Any:
    """``value`` with big integers as decimal strings and bytes as hex, which wallets accept
    for EIP-712 ``uint``/``bytes`` fields and which the page's JSON keeps exactly."""
    if isinstance(value, Mapping):
        return {str(k): _browser_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_browser_json(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _JS_SAFE_INTEGER:
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------
# What Python sends
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainParams:
    """The chain the app works on, as ``wallet_addEthereumChain`` wants it.

    ``rpc_url`` must be reachable from the user's browser (it is also what a dev account
    talks to); ``currency`` is the native currency's symbol (2-6 characters, 18 decimals).
    """

    chain_id: int
    chain_name: str
    rpc_url: str
    currency: str = "ETH"

    def __post_init__(self) -> None:
        if isinstance(self.chain_id, bool) or not isinstance(self.chain_id, int) or (
                self.chain_id < 1):
            raise ConfigError(f"chain_id must be a positive integer, got {self.chain_id!r}")
        if not self.chain_name:
            raise ConfigError("chain_name must not be empty")
        if not re.match(r"^https?://", self.rpc_url or ""):
            raise ConfigError(f"rpc_url must be an http(s) URL, got {self.rpc_url!r}")
        if not 2 <= len(self.currency or "") <= 6:
            raise ConfigError(f"currency must be a 2-6 character symbol, got {self.currency!r}")


@dataclass(frozen=True)
class DevMode:
    """Act as one of the local node's unlocked dev accounts instead of a browser wallet."""

    account: str

    def __post_init__(self) -> None:
        _address("dev account", self.account)


@dataclass(frozen=True)
class WalletRequest:
    """One thing to ask the wallet. Build it with the constructors, which make a new id."""

    id: str
    action: Action
    params: Mapping[str, Any] = field(default_factory=dict)

    @staticmethod
    def _new(action: Action, **params: Any) -> WalletRequest:
        return WalletRequest(uuid.uuid4().hex, action, params)

    @classmethod
    def connect(cls) -> WalletRequest:
        """Ask for the user's account (``eth_requestAccounts``)."""
        return cls._new("connect")

    @classmethod
    def ensure_chain(cls) -> WalletRequest:
        """Switch the wallet to the app's chain, adding it to the wallet if needed."""
        return cls._new("ensure_chain")

    @classmethod
    def sign_message(cls, message: str) -> WalletRequest:
        """EIP-191 ``personal_sign`` of ``message`` (e.g. a Sign-In with Ethereum text)."""
        return cls._new("sign_message", message=message)

    @classmethod
    def derive_key(cls, message: str) -> WalletRequest:
        """Sign a key message and derive the X25519 key; only the public key comes back."""
        return cls._new("derive_key", message=message)

    @classmethod
    def sign_typed_data(cls, typed_data: Mapping[str, Any]) -> WalletRequest:
        """``eth_signTypedData_v4`` of a full EIP-712 document (types, domain, message).

        Integers above 2**53 are sent as decimal strings and bytes as hex, so the browser
        signs exactly the values given.
        """
        return cls._new("sign_typed_data", typedData=_browser_json(typed_data))

    @classmethod
    def send_transaction(cls, sender: str, to: str, data: bytes | str,
                         value: int = 0) -> WalletRequest:
        """``eth_sendTransaction`` of calldata built in Python; ``value`` in wei."""
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"value must be a non-negative number of wei, got {value!r}")
        return cls._new("send_transaction", **{"from": _address("sender", sender)},
                        to=_address("to", to), data=_hex("data", data), value=hex(value))

    @classmethod
    def decrypt_download(cls, message: str, sealed_key: bytes | str, ciphertext: bytes,
                         plaintext_sha256: bytes | str, tensors: Sequence[Mapping[str, Any]],
                         filename: str, buyer_key: bytes | str | None = None) -> WalletRequest:
        """Open ``sealed_key`` with the key derived from ``message``, decrypt, check against
        the listing (sha256, ``tensors``) and save as ``filename`` in the browser.

        The ciphertext travels to the page inside the component's data: clear the request
        once it is answered, or every later rerun sends it again.
        """
        digest = _hex("plaintext_sha256", plaintext_sha256)
        return cls._new("decrypt_download", message=message,
                        sealedKey=_hex("sealed_key", sealed_key),
                        ciphertext=base64.b64encode(bytes(ciphertext)).decode("ascii"),
                        plaintextSha256=digest, tensors=[dict(t) for t in tensors],
                        filename=filename,
                        buyerKey=None if buyer_key is None else _hex("buyer_key", buyer_key))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.action, "params": dict(self.params)}


# ---------------------------------------------------------------------------------------------
# What the page answers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalletError:
    """Why a request failed. ``data`` is the revert data (hex) of a ``reverted`` one."""

    code: int | None
    kind: str
    message: str
    data: Any = None

    @property
    def hint(self) -> str:
        """What to tell the user."""
        return ERROR_HINTS.get(self.kind, ERROR_HINTS["rpc"])


class WalletFailed(Exception):
    """Raised by :meth:`WalletResponse.unwrap` for a failed request."""

    def __init__(self, error: WalletError) -> None:
        super().__init__(f"{error.kind}: {error.message}")
        self.error = error


@dataclass(frozen=True)
class WalletResponse:
    id: str
    ok: bool
    result: Mapping[str, Any] | None = None
    error: WalletError | None = None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> WalletResponse:
        error = raw.get("error")
        return cls(id=str(raw["id"]), ok=bool(raw.get("ok")), result=raw.get("result"),
                   error=WalletError(code=error.get("code"), kind=str(error.get("kind", "rpc")),
                                     message=str(error.get("message", "")),
                                     data=error.get("data")) if error else None)

    def unwrap(self) -> Mapping[str, Any]:
        """The result; raises :class:`WalletFailed` if the request failed."""
        if not self.ok or self.error is not None:
            raise WalletFailed(self.error or WalletError(None, "rpc", "no result"))
        return self.result or {}


@dataclass(frozen=True)
class WalletStatus:
    """What the page knows without asking the user: is there a wallet, which account (once
    connected) and which chain."""

    available: bool = False
    account: str | None = None
    chain_id: int | None = None
    mode: Mode = "none"

    @property
    def connected(self) -> bool:
        return self.account is not None


@dataclass(frozen=True)
class WalletState:
    """The component's state after this run: the status, and the last response it reported
    (to whichever request; use :meth:`response_to`)."""

    status: WalletStatus
    response: WalletResponse | None

    def response_to(self, request: WalletRequest | None) -> WalletResponse | None:
        """The answer to ``request``, once it has come."""
        if request is None or self.response is None or self.response.id != request.id:
            return None
        return self.response


# ---------------------------------------------------------------------------------------------
# The component
# ---------------------------------------------------------------------------------------------


def read_bundle(path: Path = BUNDLE) -> str:
    """The component's JS, or :class:`WalletBundleMissing` saying how to build it."""
    try:
        js = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WalletBundleMissing(
            f"The wallet component is not built ({path} is missing). Run `make setup` "
            "(or `npm run build:wallet`) in the project folder, then reload the app."
        ) from None
    # Streamlit takes a one-line string for a file path; a bundle always has a newline.
    return js if "\n" in js else js + "\n"


@functools.cache
def _renderer(bundle: Path, mtime_ns: int) -> Any:
    # Registered once per bundle version: a rebuilt bundle is picked up without a restart.
    return st.components.v2.component(COMPONENT_NAME, js=read_bundle(bundle),
                                      css=STYLE.read_text(encoding="utf-8"))


def _mount() -> Any:
    try:
        mtime_ns = BUNDLE.stat().st_mtime_ns
    except FileNotFoundError:
        read_bundle(BUNDLE)  # raises the explanation
        raise
    return _renderer(BUNDLE, mtime_ns)


#: Where :func:`wallet` keeps the answers Python has seen, per component key.
ANSWERS_SEEN = "_fairfl_wallet_answers"
#: How many answers per key it keeps (the oldest go first).
ANSWERS_KEPT = 16


def _remembered(key: str, request: WalletRequest | None,
                raw_response: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The answer to ``request`` if Python has seen it in this session, else ``raw_response``.

    Streamlit resets a component's state when it is not mounted for a run (another page, a
    hidden panel), so the component forgets the answers it reported. The page replays an
    answer to a remounted wallet, but Python should not depend on that race for an answer it
    has already seen: it keeps the last :data:`ANSWERS_KEPT` answers in the session.
    """
    seen: dict[str, Any] = st.session_state.setdefault(ANSWERS_SEEN, {}).setdefault(key, {})
    if raw_response and isinstance(raw_response.get("id"), str):
        seen.pop(raw_response["id"], None)
        seen[raw_response["id"]] = raw_response
        while len(seen) > ANSWERS_KEPT:
            seen.pop(next(iter(seen)))
    if request is not None and (not raw_response or raw_response.get("id") != request.id):
        return seen.get(request.id, raw_response)
    return raw_response


def wallet(request: WalletRequest | None, *, key: str, chain: ChainParams,
           dev: DevMode | None = None) -> WalletState:
    """Mounts the wallet (a one-line status in the page) and hands it ``request``.

    Mount it on every run with the same ``key``. ``request`` runs once per id; its answer
    comes in a later run, as ``response_to(request)`` of the returned state. ``dev`` replaces
    the browser wallet by a dev account of the local node, and is refused on other chains.
    """
    if dev is not None and chain.chain_id != LOCAL_CHAIN_ID:
        raise ConfigError(
            f"dev accounts are for the local chain ({LOCAL_CHAIN_ID}) only, not chain "
            f"{chain.chain_id}: connect a browser wallet instead")
    data = {
        "key": key,
        "request": request.to_json() if request is not None else None,
        "chain": asdict(chain),
        "dev": asdict(dev) if dev is not None else None,
    }
    result = _mount()(key=key, data=data, width="stretch", height="content")
    raw_status = result.get("status") or {}
    raw_response = _remembered(key, request, result.get("response"))
    return WalletState(
        status=WalletStatus(available=bool(raw_status.get("available")),
                            account=raw_status.get("account"),
                            chain_id=raw_status.get("chain_id"),
                            mode=raw_status.get("mode", "none")),
        response=WalletResponse.from_json(raw_response) if raw_response else None,
    )
