"""The wallet component in a real browser, against the real chain.

Chromium (Playwright) opens wallet_page.py served by a real ``streamlit run``; the page's
wallet is tests/app/wallet_provider.js, an EIP-1193 provider injected before the page's
scripts that forwards signing to the test chain's anvil (its unlocked accounts are ape's test
accounts). Python then checks what came back: signatures with eth_account, transactions
with their receipts on anvil, derived keys against fl_agent.crypto.wallet_keys, downloads
byte for byte. Every test runs between an anvil snapshot and its revert, so the ledger tests
still see the story they expect.

Run with ``FAIRFL_WITH_BROWSER=1 python -m pytest tests/app -q -p no:ape_test``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import function_signature_to_4byte_selector

from fl_agent.chain.deployment import load_deployment
from fl_agent.crypto.sealing import encrypt_content, new_content_key, seal_key
from fl_agent.crypto.wallet_keys import buyer_key_message, derive_key, public_bytes
from fl_agent.learning.models import ModelSpec, init_params, param_layout
from fl_agent.learning.weights import encode_weights
from harness import PROVIDER_JS, REPO, SCREENS, ChainUnderTest, rpc

sys.path.insert(0, str(REPO / "app"))  # the app's modules are top-level there
from wallet import (  # noqa: E402
    ChainParams,
    DevMode,
    WalletBundleMissing,
    WalletRequest,
    WalletResponse,
    WalletStatus,
    read_bundle,
    wallet,
)

#: ms; generous: 2 cores may be shared with another run, and nothing here is timed.
TIMEOUT = 90_000
UNIT = 10**18
BUYER, DEV, OTHER = 7, 8, 9  # ape test account indexes; 7 is the story's buyer (holds FLT)
MLP = ModelSpec(name="mlp", input_shape=(64,), num_classes=10, hidden=(32,))


def selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


def calldata(signature: str, types: list[str], values: list[Any]) -> str:
    return "0x" + (selector(signature) + encode(types, values)).hex()


def account_address(index: int) -> str:
    from ape import accounts

    return accounts.test_accounts[index].address


# --------------------------------------------------------------------------------------------
# Without a browser: what Python refuses before anything reaches the page
# --------------------------------------------------------------------------------------------


def test_dev_accounts_are_refused_off_the_local_chain():
    mainnet = ChainParams(chain_id=1, chain_name="Ethereum", rpc_url="https://rpc.invalid")
    with pytest.raises(ValueError, match=r"local chain \(31337\) only"):
        wallet(WalletRequest.connect(), key="wallet", chain=mainnet,
               dev=DevMode("0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"))


def test_missing_bundle_says_to_run_make_setup(tmp_path: Path):
    with pytest.raises(WalletBundleMissing, match="make setup"):
        read_bundle(tmp_path / "wallet.js")


@pytest.mark.parametrize("make", [
    lambda: WalletRequest.send_transaction("0x12", "0x" + "11" * 20, b""),
    lambda: WalletRequest.send_transaction("0x" + "11" * 20, "0x" + "11" * 20, "0x1"),
    lambda: WalletRequest.send_transaction("0x" + "11" * 20, "0x" + "11" * 20, b"", value=-1),
    lambda: ChainParams(chain_id=0, chain_name="x", rpc_url="http://127.0.0.1:8545"),
    lambda: ChainParams(chain_id=1, chain_name="x", rpc_url="ws://127.0.0.1:8545"),
    lambda: DevMode("not an address"),
])
def test_bad_requests_are_refused_in_python(make: Callable[[], object]):
    with pytest.raises(ValueError):
        make()


def test_python_keeps_the_answers_it_has_seen_for_a_wallet_mounted_anew(monkeypatch):
    """Streamlit resets a component's state when it is not mounted for a run; an answer
    Python has seen must still come back for its request, without running it again."""
    from types import SimpleNamespace

    import wallet as module

    monkeypatch.setattr(module, "st", SimpleNamespace(session_state={}))
    first, second = WalletRequest.connect(), WalletRequest.connect()
    answer = {"id": first.id, "ok": True, "result": {"account": "0x" + "11" * 20}}
    assert module._remembered("wallet", first, None) is None  # not answered yet
    assert module._remembered("wallet", first, answer) == answer
    assert module._remembered("wallet", first, None) == answer  # the state was reset
    other = {"id": second.id, "ok": True, "result": {}}
    assert module._remembered("wallet", first, other) == answer  # the last one is another's
    assert module._remembered("wallet", second, None) == other
    assert module._remembered("another", first, None) is None  # kept per component key
    assert module._remembered("wallet", None, None) is None

    for _ in range(module.ANSWERS_KEPT - 1):
        request = WalletRequest.connect()
        module._remembered("wallet", request, {"id": request.id, "ok": True, "result": {}})
    assert module._remembered("wallet", first, None) is None  # the oldest went first
    assert module._remembered("wallet", second, None) == other


def test_requests_are_json_the_browser_keeps_exactly():
    big = 2**200 + 1
    request = WalletRequest.sign_typed_data({"message": {"value": big, "nonce": 3,
                                                         "salt": b"\x01\x02"}})
    assert request.params["typedData"] == {"message": {"value": str(big), "nonce": 3,
                                                       "salt": "0x0102"}}
    tx = WalletRequest.send_transaction("0x" + "11" * 20, "0x" + "22" * 20, b"\xab", value=big)
    assert tx.params == {"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "data": "0xab",
                         "value": hex(big)}
    assert WalletRequest.connect().id != WalletRequest.connect().id
    json.dumps(tx.to_json())


# --------------------------------------------------------------------------------------------
# In Chromium
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def chain_kept_as_it_was(request: pytest.FixtureRequest) -> Iterator[None]:
    """Browser tests write to the shared test chain; put it back afterwards."""
    if "wallet_page" not in request.fixturenames:
        yield
        return
    url = request.getfixturevalue("test_chain").url
    snapshot = rpc(url, "evm_snapshot")
    try:
        yield
    finally:
        rpc(url, "evm_revert", snapshot)


@dataclass
class WalletPage:
    """The test page in one browser tab."""

    page: Any

    def ask(self, request: WalletRequest) -> WalletResponse:
        """Hands ``request`` to the page and waits for its answer."""
        from playwright.sync_api import expect

        box = self.page.get_by_label("Request (JSON)")
        box.fill(json.dumps(request.to_json()))
        box.press("Enter")
        answer = self.page.locator(".st-key-wallet_response code")
        expect(answer).to_contain_text(f'"id": "{request.id}"', timeout=TIMEOUT)
        return WalletResponse.from_json(json.loads(answer.inner_text()))

    def status(self) -> WalletStatus:
        return WalletStatus(**json.loads(self.page.locator(".st-key-wallet_status code")
                                         .inner_text()))

    def expect_status(self, **fields: Any) -> None:
        """Waits until the status Python sees has ``fields``."""
        from playwright.sync_api import expect

        box = self.page.locator(".st-key-wallet_status code")
        for name, value in fields.items():
            expect(box).to_contain_text(f'"{name}": {json.dumps(value)}', timeout=TIMEOUT)

    @property
    def status_line(self) -> Any:
        """The component's own one-line status in the page."""
        return self.page.get_by_role("status", name="Wallet status")

    def calls(self, method: str | None = None) -> list[str]:
        calls = self.page.evaluate("window.__testWallet.calls")
        return calls if method is None else [c for c in calls if c == method]

    def screenshot(self, name: str) -> Path:
        SCREENS.mkdir(parents=True, exist_ok=True)
        path = SCREENS / name
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 5_000
        return path


@pytest.fixture
def wallet_page(browser: Any, wallet_server: str, test_chain: ChainUnderTest
                ) -> Iterator[Callable[..., WalletPage]]:
    """Opens the test page; ``wallet=`` configures the injected test wallet (None: none)."""
    from playwright.sync_api import expect

    contexts = []

    def open_page(*, wallet: dict[str, Any] | None, query: str = "") -> WalletPage:
        context = browser.new_context(accept_downloads=True,
                                      viewport={"width": 1100, "height": 900})
        contexts.append(context)
        page = context.new_page()
        if wallet is not None:
            config = {"rpcUrl": test_chain.url, **wallet}
            page.add_init_script(script=f"window.__testWalletConfig = {json.dumps(config)};")
            page.add_init_script(path=str(PROVIDER_JS))
        page.goto(wallet_server + query, wait_until="domcontentloaded")
        expect(page.get_by_label("Request (JSON)")).to_be_visible(timeout=TIMEOUT)
        opened = WalletPage(page)
        expect(opened.status_line).to_be_visible(timeout=TIMEOUT)
        return opened

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def contracts(test_chain: ChainUnderTest) -> dict[str, str]:
    return load_deployment(test_chain.url, test_chain.deployments).contracts


def receipt(url: str, tx_hash: str) -> dict[str, Any]:
    found = rpc(url, "eth_getTransactionReceipt", tx_hash)
    assert found is not None, f"no receipt for {tx_hash}"
    return found


def call_uint(url: str, to: str, signature: str, types: list[str], values: list[Any]) -> int:
    return int(rpc(url, "eth_call", {"to": to, "data": calldata(signature, types, values)},
                   "latest"), 16)


def test_connect_then_switch_from_a_wrong_chain(wallet_page, test_chain):
    buyer = account_address(BUYER)
    page = wallet_page(wallet={"account": buyer, "chainId": 1})

    page.expect_status(available=True, mode="injected", chain_id=1)
    assert page.status().account is None  # eth_accounts asks nothing: not connected yet
    from playwright.sync_api import expect

    expect(page.status_line).to_contain_text("not connected")
    expect(page.status_line).to_contain_text("on chain 1, not FairFL local (31337)")

    connected = page.ask(WalletRequest.connect())
    assert connected.ok, connected.error
    assert connected.result == {"account": buyer, "chainId": 1}
    page.expect_status(account=buyer)

    switched = page.ask(WalletRequest.ensure_chain())
    assert switched.result == {"chainId": 31337}
    # Unknown to the wallet (4902), so the chain was added with the app's parameters.
    assert page.calls("wallet_switchEthereumChain") == ["wallet_switchEthereumChain"]
    assert page.calls("wallet_addEthereumChain") == ["wallet_addEthereumChain"]
    page.expect_status(chain_id=31337)  # from the wallet's chainChanged event
    expect(page.status_line).to_contain_text(f"account {buyer[:6]}…{buyer[-4:]}")
    expect(page.status_line).to_contain_text("on FairFL local")

    again = page.ask(WalletRequest.ensure_chain())
    assert again.result == {"chainId": 31337}
    assert len(page.calls("wallet_switchEthereumChain")) == 1  # already there: nothing asked
    print(f"screenshot: {page.screenshot('wallet-injected.png')}")


def test_a_wallet_that_cannot_add_the_chain(wallet_page):
    page = wallet_page(wallet={"account": account_address(BUYER), "chainId": 5,
                               "canAddChains": False})
    failed = page.ask(WalletRequest.ensure_chain())
    assert not failed.ok
    assert (failed.error.kind, failed.error.code) == ("unknown_chain", 4902)
    assert "31337" in failed.error.message
    assert "does not know this chain" in failed.error.hint
    page.expect_status(chain_id=5)


def test_sign_in_message_and_a_rejected_signature(wallet_page):
    buyer = account_address(BUYER)
    page = wallet_page(wallet={"account": buyer, "connected": True})
    # An EIP-4361 text, as the app will build it in Python.
    siwe = (f"127.0.0.1 wants you to sign in with your Ethereum account:\n{buyer}\n\n"
            "Sign in to FairFL.\n\nURI: http://127.0.0.1\nVersion: 1\nChain ID: 31337\n"
            "Nonce: 8f3kq2Lx9\nIssued At: 2026-12-01T12:00:00Z")

    signed = page.ask(WalletRequest.sign_message(siwe))
    assert signed.ok, signed.error
    signature = bytes.fromhex(signed.result["signature"][2:])
    assert Account.recover_message(encode_defunct(text=siwe), signature=signature) == buyer
    assert signed.result["account"] == buyer

    page.page.evaluate("window.__testWallet.rejectNext('personal_sign')")
    rejected = page.ask(WalletRequest.sign_message(siwe))
    assert not rejected.ok
    assert (rejected.error.kind, rejected.error.code) == ("rejected", 4001)
    assert "rejected in your wallet" in rejected.error.hint

    once_more = page.ask(WalletRequest.sign_message(siwe))  # the user signs this time
    assert once_more.result["signature"] == signed.result["signature"]  # RFC 6979


def test_a_wallet_busy_with_another_request(wallet_page):
    page = wallet_page(wallet={"account": account_address(BUYER)})
    page.page.evaluate("window.__testWallet.failNext('eth_requestAccounts', -32002, "
                       "'Request of type wallet_requestPermissions already pending')")
    busy = page.ask(WalletRequest.connect())
    assert (busy.error.kind, busy.error.code) == ("pending", -32002)
    assert "answer it first" in busy.error.hint
    assert page.ask(WalletRequest.connect()).ok


def test_derive_key_in_the_browser_equals_python(wallet_page, test_chain, contracts):
    """The key parity of issue 8: the browser wallet and ape's account derive one key."""
    from ape import accounts

    page = wallet_page(wallet={"account": account_address(BUYER), "connected": True})
    message = buyer_key_message(31337, contracts["ModelMarketplace"], test_chain.story.model_id)

    derived = page.ask(WalletRequest.derive_key(message))
    assert derived.ok, derived.error
    expected = public_bytes(derive_key(accounts.test_accounts[BUYER], message))
    assert derived.result["publicKey"] == "0x" + expected.hex()
    assert set(derived.result) == {"account", "publicKey"}  # nothing private comes back


def test_send_transaction_runs_once_and_reverts_come_back_decoded(wallet_page, test_chain,
                                                                   contracts):
    from playwright.sync_api import expect

    url, token = test_chain.url, contracts["FairToken"]
    buyer, other = account_address(BUYER), account_address(OTHER)
    page = wallet_page(wallet={"account": buyer, "connected": True})
    before = call_uint(url, token, "balanceOf(address)", ["address"], [other])

    transfer = WalletRequest.send_transaction(
        buyer, token, calldata("transfer(address,uint256)", ["address", "uint256"],
                               [other, UNIT]))
    sent = page.ask(transfer)
    assert sent.ok, sent.error
    mined = receipt(url, sent.result["hash"])
    assert int(mined["status"], 16) == 1
    assert (mined["from"].lower(), mined["to"].lower()) == (buyer.lower(), token.lower())
    assert call_uint(url, token, "balanceOf(address)", ["address"], [other]) == before + UNIT

    # Streamlit reruns the page on every interaction, and a wallet hidden for a run is
    # mounted anew with a reset state; the answered request must not be sent again, and its
    # answer must come back (Python keeps the answers it has seen: CI once saw the page's
    # replay to the new mount lost, and the answer stayed "waiting").
    page.page.get_by_role("button", name="Rerun").click()
    hide = page.page.get_by_text("Hide the wallet")
    hide.click()
    expect(page.status_line).to_have_count(0, timeout=TIMEOUT)
    expect(page.page.locator(".st-key-wallet_response code")).to_have_text("hidden")
    hide.click()
    expect(page.page.locator(".st-key-wallet_response code")).to_contain_text(
        f'"hash": "{sent.result["hash"]}"', timeout=TIMEOUT)
    page.ask(WalletRequest.sign_message("after the reruns"))  # every rerun is processed by now
    assert len(page.calls("eth_sendTransaction")) == 1

    too_much = WalletRequest.send_transaction(
        buyer, token, calldata("transfer(address,uint256)", ["address", "uint256"],
                               [other, 10**30]))
    reverted = page.ask(too_much)
    assert not reverted.ok
    assert reverted.error.kind == "reverted"
    data = bytes.fromhex(reverted.error.data[2:])
    assert data[:4] == selector("ERC20InsufficientBalance(address,uint256,uint256)")
    assert len(page.calls("eth_sendTransaction")) == 1  # the dry run stopped it


def test_sign_typed_data_permit_for_the_token(wallet_page, test_chain, contracts):
    url, token, market = test_chain.url, contracts["FairToken"], contracts["ModelMarketplace"]
    buyer = account_address(BUYER)
    page = wallet_page(wallet={"account": buyer, "connected": True})
    value, deadline = 5 * UNIT + 1, 2**255  # 5 FLT + 1 wei: not a float in the browser
    permit = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
            "Permit": [{"name": "owner", "type": "address"},
                       {"name": "spender", "type": "address"},
                       {"name": "value", "type": "uint256"},
                       {"name": "nonce", "type": "uint256"},
                       {"name": "deadline", "type": "uint256"}],
        },
        "primaryType": "Permit",
        "domain": {"name": "FairFL Token", "version": "1", "chainId": 31337,
                   "verifyingContract": token},
        "message": {"owner": buyer, "spender": market, "value": value,
                    "nonce": call_uint(url, token, "nonces(address)", ["address"], [buyer]),
                    "deadline": deadline},
    }

    signed = page.ask(WalletRequest.sign_typed_data(permit))
    assert signed.ok, signed.error
    signature = bytes.fromhex(signed.result["signature"][2:])
    assert Account.recover_message(encode_typed_data(full_message=permit),
                                   signature=signature) == buyer

    # The token agrees: anyone may submit the permit (here anvil's account 0).
    r, s, v = signature[:32], signature[32:64], signature[64]
    submitted = rpc(url, "eth_sendTransaction", {
        "from": account_address(0), "to": token,
        "data": calldata("permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
                         ["address", "address", "uint256", "uint256", "uint8", "bytes32",
                          "bytes32"], [buyer, market, value, deadline, v, r, s])})
    assert int(receipt(url, submitted)["status"], 16) == 1
    assert call_uint(url, token, "allowance(address,address)", ["address", "address"],
                     [buyer, market]) == value


def test_decrypt_download_saves_only_a_model_that_checks_out(wallet_page, test_chain,
                                                             contracts):
    from ape import accounts

    page = wallet_page(wallet={"account": account_address(BUYER), "connected": True})
    downloads: list[Any] = []
    page.page.on("download", lambda offered: downloads.append(offered))
    model_id = test_chain.story.model_id
    message = buyer_key_message(31337, contracts["ModelMarketplace"], model_id)
    buyer_key = public_bytes(derive_key(accounts.test_accounts[BUYER], message))
    weights = encode_weights(MLP, init_params(MLP, seed=3))
    content_key = new_content_key()
    ciphertext = encrypt_content(weights, content_key)
    tampered = bytearray(ciphertext)
    tampered[-20] ^= 0x01
    tensors = [{"name": s.name, "dtype": "F32", "shape": list(s.shape)}
               for s in param_layout(MLP)]
    other_tensors = [dict(t) for t in tensors]
    other_tensors[0]["shape"] = [16, 128]

    def ask(data: bytes, sha256: bytes, listed: list[dict[str, Any]]) -> WalletResponse:
        return page.ask(WalletRequest.decrypt_download(
            message, seal_key(content_key, buyer_key), data, sha256, listed,
            f"model-{model_id}.safetensors"))

    digest = hashlib.sha256(weights).digest()
    assert ask(bytes(tampered), digest, tensors).error.kind == "wrong_key"
    assert ask(ciphertext, hashlib.sha256(b"another model").digest(),
               tensors).error.kind == "hash_mismatch"
    assert ask(ciphertext, digest, other_tensors).error.kind == "bad_weights"
    # The key was derived by signing once; later requests reuse it from the page's memory.
    assert len(page.calls("personal_sign")) == 1

    with page.page.expect_download(timeout=TIMEOUT) as download:
        saved = ask(ciphertext, digest, tensors)
    assert saved.ok, saved.error
    assert saved.result == {"bytes": len(weights), "sha256": digest.hex(),
                            "filename": f"model-{model_id}.safetensors"}
    assert download.value.suggested_filename == f"model-{model_id}.safetensors"
    assert Path(download.value.path()).read_bytes() == weights
    assert len(downloads) == 1  # the three refused files were never offered
    assert len(page.calls("personal_sign")) == 1


def test_no_wallet_says_what_to_do(wallet_page):
    from playwright.sync_api import expect

    page = wallet_page(wallet=None)
    page.expect_status(available=False, mode="none")
    expect(page.status_line).to_contain_text("No wallet found: install MetaMask")
    failed = page.ask(WalletRequest.connect())
    assert not failed.ok
    assert failed.error.kind == "no_wallet"
    assert "Install MetaMask" in failed.error.hint


def test_dev_account_on_the_local_chain(wallet_page, test_chain):
    from playwright.sync_api import expect

    url, dev, other = test_chain.url, account_address(DEV), account_address(OTHER)
    page = wallet_page(wallet=None, query=f"?dev={dev}")
    assert page.page.evaluate("window.ethereum === undefined")
    page.expect_status(available=True, mode="dev", account=dev, chain_id=31337)
    expect(page.status_line).to_contain_text("DEV ACCOUNT (local chain only")

    connected = page.ask(WalletRequest.connect())
    assert connected.result == {"account": dev, "chainId": 31337}
    assert page.ask(WalletRequest.ensure_chain()).result == {"chainId": 31337}
    signed = page.ask(WalletRequest.sign_message("dev mode"))
    assert Account.recover_message(encode_defunct(text="dev mode"),
                                   signature=bytes.fromhex(signed.result["signature"][2:])) == dev

    balance = int(rpc(url, "eth_getBalance", other, "latest"), 16)
    sent = page.ask(WalletRequest.send_transaction(dev, other, b"", value=12345))
    assert sent.ok, sent.error
    mined = receipt(url, sent.result["hash"])
    assert int(mined["status"], 16) == 1 and mined["from"].lower() == dev.lower()
    assert int(rpc(url, "eth_getBalance", other, "latest"), 16) == balance + 12345
    print(f"screenshot: {page.screenshot('wallet-dev-account.png')}")
    # anvil would sign for any of its accounts; the dev wallet only for the one it holds.
    not_mine = page.ask(WalletRequest.send_transaction(other, dev, b"", value=1))
    assert (not_mine.error.kind, not_mine.error.code) == ("rpc", 4100)
    assert asdict(page.status())["mode"] == "dev"
