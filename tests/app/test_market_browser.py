"""Buying a model through a wallet, for real: Chromium, the app, anvil, the key agent.

Chromium (Playwright, Debian's binary) opens the app served by a real ``streamlit run``. The
page's wallet is tests/app/wallet_provider.js, an EIP-1193 provider injected before the
page's scripts that forwards ``eth_sendTransaction``, ``personal_sign`` and
``eth_signTypedData_v4`` to anvil's unlocked accounts (ape's test accounts). The seller's key
agent runs as its own process (``fl-agent market serve``). What the tests check comes from
the chain (balances, purchases) and from the creator's own reading of the final model, never
from the app.

The story: a buyer connects, signs in, buys with a permit, waits for the key, downloads, and
the file equals the trained weights; a second buyer pays with approve + buy from a wallet on
the wrong chain; a contributor withdraws exactly its share. Then the error paths: a rejected
signature, not enough FLT, a price raised after the page loaded. Screenshots of every page go
to reports/screens/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import PROVIDER_JS, SCREENS, ChainUnderTest, rpc
from market_story import BUYER, FLT, PRICE, SECOND_BUYER

#: ms; generous: 2 cores may be shared with another run, and nothing here is timed.
TIMEOUT = 120_000
NO_FLT, PRICE_WATCHER = 8, 9  # ape test accounts that hold no FLT / watch the price move


def address(index: int) -> str:
    """The address of anvil's ``index``-th account (the test mnemonic's, like ape's)."""
    from fl_agent.chain.node import dev_account

    return dev_account(index).address


def erc20(url: str, token: str, signature: str, *args: Any) -> int:
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector

    types = [t for t in signature[signature.index("(") + 1:-1].split(",") if t]
    data = function_signature_to_4byte_selector(signature) + encode(types, list(args))
    return int(rpc(url, "eth_call", {"to": token, "data": "0x" + data.hex()}, "latest"), 16)


@pytest.fixture(scope="module")
def contracts(test_chain: ChainUnderTest) -> dict[str, str]:
    from fl_agent.chain.deployment import load_deployment

    return load_deployment(test_chain.url, test_chain.deployments).contracts


@pytest.fixture
def app_page(browser: Any, streamlit_server: str, test_chain: ChainUnderTest,
             key_agent: Any) -> Iterator[Callable[..., Any]]:
    """Opens a page of the app in a fresh browser profile whose wallet holds ``account``."""
    contexts = []

    def open_page(path: str, account: int, *, chain_id: int = 31337) -> Any:
        from playwright.sync_api import expect

        context = browser.new_context(accept_downloads=True,
                                      viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        config = {"rpcUrl": test_chain.url, "account": address(account), "chainId": chain_id}
        page.add_init_script(script=f"window.__testWalletConfig = {json.dumps(config)};")
        page.add_init_script(path=str(PROVIDER_JS))
        page.goto(f"{streamlit_server}/{path}", wait_until="domcontentloaded")
        expect(page.get_by_role("status", name="Wallet status")).to_be_visible(timeout=TIMEOUT)
        return page

    yield open_page
    for context in contexts:
        context.close()


def settle(page: Any) -> None:
    """Waits until the app has finished its current run."""
    from playwright.sync_api import expect

    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT)
    page.wait_for_timeout(300)


def shot(page: Any, name: str) -> Path:
    SCREENS.mkdir(parents=True, exist_ok=True)
    settle(page)
    path = SCREENS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def buy(page: Any, price: str = "50.00 FLT", pay_with: str | None = None) -> Any:
    from playwright.sync_api import expect

    button = page.get_by_role("button", name=f"Buy for {price}")
    expect(button).to_be_visible(timeout=TIMEOUT)
    if pay_with:
        page.get_by_text(pay_with, exact=True).click()
    button.click()
    return page.get_by_test_id("stExpander").filter(has_text="Buying model")


def purchase_gas(url: str, tx_hashes: list[str]) -> int:
    return sum(int(rpc(url, "eth_getTransactionReceipt", tx)["gasUsed"], 16) for tx in tx_hashes)


def test_a_buyer_buys_with_a_permit_gets_the_key_and_downloads_the_trained_weights(
        app_page, test_chain, contracts):
    from playwright.sync_api import expect

    story, url = test_chain.story, test_chain.url
    token = contracts["FairToken"]
    start = time.monotonic()
    before = erc20(url, token, "balanceOf(address)", story.buyer)
    page = app_page(f"model?model={story.model_id}", BUYER)
    shot(page, "model.png")
    status = buy(page)
    expect(status).to_contain_text("Paid into escrow (permit + buy", timeout=TIMEOUT)
    for step in ("Connect your wallet", "Sign in with Ethereum", "Derive your model key",
                 "Sign a permit", "Pay 50.00 FLT into escrow"):
        expect(status).to_contain_text(step)
    assert erc20(url, token, "balanceOf(address)", story.buyer) == before - PRICE

    # The key agent (its own process) delivers; the page offers the download by itself.
    download_button = page.get_by_role("button", name="Download and decrypt")
    expect(download_button).to_be_visible(timeout=TIMEOUT)
    shot(page, "model-bought.png")
    with page.expect_download(timeout=TIMEOUT) as offered:
        download_button.click()
    saved = Path(offered.value.path()).read_bytes()
    assert saved == story.weights  # byte for byte what the task trained
    assert offered.value.suggested_filename == f"fairfl-model-{story.model_id}.safetensors"
    expect(page.get_by_test_id("stExpander").filter(has_text="Downloading model")
           ).to_contain_text("checked against the listing", timeout=TIMEOUT)
    calls = page.evaluate("window.__testWallet.calls")
    assert calls.count("eth_signTypedData_v4") == 1 and calls.count("eth_sendTransaction") == 1

    purchased = _purchase_tx(url, contracts, story.buyer)
    report({"permit_and_buy_gas": purchase_gas(url, [purchased]),
            "browser_story_seconds": round(time.monotonic() - start, 1)})


def test_a_second_buyer_on_the_wrong_chain_pays_with_approve_and_buy(app_page, test_chain,
                                                                      contracts):
    from playwright.sync_api import expect

    url, token, market = test_chain.url, contracts["FairToken"], contracts["ModelMarketplace"]
    buyer = address(SECOND_BUYER)
    before = erc20(url, token, "balanceOf(address)", buyer)
    page = app_page(f"model?model={test_chain.story.model_id}", SECOND_BUYER, chain_id=1)
    status = buy(page, pay_with="approve")
    expect(status).to_contain_text("Paid into escrow (approve + buy", timeout=TIMEOUT)
    expect(status).to_contain_text("Switch the wallet to chain 31337")
    expect(status).to_contain_text("Allow the marketplace to take 50.00 FLT")
    assert erc20(url, token, "balanceOf(address)", buyer) == before - PRICE
    assert erc20(url, token, "allowance(address,address)", buyer, market) == 0
    calls = page.evaluate("window.__testWallet.calls")
    assert "wallet_switchEthereumChain" in calls and "eth_signTypedData_v4" not in calls
    approve = _approve_tx(url, token, buyer)
    report({"approve_and_buy_gas": purchase_gas(url, [approve, _purchase_tx(url, contracts,
                                                                             buyer)])})


def test_a_contributor_withdraws_exactly_its_share(app_page, test_chain, contracts):
    from playwright.sync_api import expect

    story, url = test_chain.story, test_chain.url
    token, market = contracts["FairToken"], contracts["ModelMarketplace"]
    total = sum(story.earned.values())
    payee = max(story.earned, key=story.earned.get)  # the largest earner
    index = [address(i) for i in range(12)].index(payee)
    # Both earlier purchases must be delivered before the share is final.
    deadline = time.monotonic() + TIMEOUT / 1000
    while erc20(url, market, "withdrawable(uint256,address)", story.model_id, payee) < \
            (2 * PRICE * story.earned[payee]) // total:
        assert time.monotonic() < deadline, "the key agent did not deliver both purchases"
        time.sleep(0.5)
    owed = (2 * PRICE * story.earned[payee]) // total
    before = erc20(url, token, "balanceOf(address)", payee)
    page = app_page("account", index)
    page.get_by_role("button", name="Connect and sign in").click()
    expect(page.get_by_test_id("stExpander").filter(has_text="Signing in")
           ).to_contain_text("Sign in with Ethereum", timeout=TIMEOUT)
    button = page.get_by_role("button", name=f"Withdraw {owed / FLT:,.4f} FLT from model "
                                             f"{story.model_id}")
    expect(button).to_be_visible(timeout=TIMEOUT)
    shot(page, "account.png")
    button.click()
    expect(page.get_by_test_id("stExpander").filter(has_text="Withdrawing revenue")
           ).to_contain_text("Wait for the transaction to be mined", timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT / 1000
    while erc20(url, token, "balanceOf(address)", payee) == before:
        assert time.monotonic() < deadline, "the withdrawal never arrived"
        time.sleep(0.5)
    assert erc20(url, token, "balanceOf(address)", payee) - before == owed


def test_a_rejected_signature_sends_nothing(app_page, test_chain, contracts):
    from playwright.sync_api import expect

    page = app_page(f"model?model={test_chain.story.model_id}", PRICE_WATCHER)
    _fund(test_chain, PRICE_WATCHER)
    page.evaluate("window.__testWallet.rejectNext('personal_sign')")
    status = buy(page)
    expect(status).to_contain_text("You rejected the sign-in in your wallet. Nothing was sent",
                                   timeout=TIMEOUT)
    assert "eth_sendTransaction" not in page.evaluate("window.__testWallet.calls")
    assert _status(test_chain.url, contracts, address(PRICE_WATCHER)) == 0


def test_not_enough_flt_is_said_before_anything_is_signed(app_page, test_chain, contracts):
    from playwright.sync_api import expect

    page = app_page(f"model?model={test_chain.story.model_id}", NO_FLT)
    status = buy(page)
    expect(status).to_contain_text("You hold 0.00 FLT; the price is 50.00 FLT. Nothing was paid",
                                   timeout=TIMEOUT)
    calls = page.evaluate("window.__testWallet.calls")
    assert "eth_sendTransaction" not in calls and "eth_signTypedData_v4" not in calls


def test_a_price_raised_after_the_page_loaded_is_refused(app_page, test_chain, contracts):
    from ape import networks
    from playwright.sync_api import expect

    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import load_deployment
    from fl_agent.chain.node import dev_account

    story, url = test_chain.story, test_chain.url
    _fund(test_chain, PRICE_WATCHER)
    page = app_page(f"model?model={story.model_id}", PRICE_WATCHER)
    expect(page.get_by_role("button", name="Buy for 50.00 FLT")).to_be_visible(timeout=TIMEOUT)
    with networks.parse_network_choice(url):
        market = FairFL(load_deployment(url, test_chain.deployments)).marketplace
        market.set_price(story.model_id, 60 * FLT, sender=dev_account(0))
        try:
            status = buy(page)  # the button still says 50: the page loaded before the change
            expect(status).to_contain_text("The price changed to 60.00 FLT after the page "
                                           "showed 50.00 FLT", timeout=TIMEOUT)
            assert _status(url, contracts, address(PRICE_WATCHER)) == 0
        finally:
            market.set_price(story.model_id, PRICE, sender=dev_account(0))


def test_screenshots_of_every_page(app_page):
    for path, name in (("", "models.png"), ("tasks", "tasks.png"),
                       ("participants", "participants.png")):
        page = app_page(path, BUYER)
        page.get_by_role("heading").first.wait_for(timeout=TIMEOUT)
        shot(page, name)


# -- helpers ------------------------------------------------------------------------------------
def report(figures: dict[str, Any]) -> None:
    """Adds measured figures to reports/screens/market.json (read by the docs)."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / "market.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**current, **figures}, indent=2) + "\n")
    print(figures)


def _topic(address_: str) -> str:
    return "0x" + "00" * 12 + address_[2:].lower()


def _purchase_tx(url: str, contracts: dict[str, str], buyer: str) -> str:
    from eth_utils import keccak

    topic = "0x" + keccak(text="ModelPurchased(uint256,address,address,uint128,bytes32,uint64)"
                          ).hex()
    logs = rpc(url, "eth_getLogs", {"address": contracts["ModelMarketplace"], "fromBlock": "0x0",
                                    "topics": [topic, None, _topic(buyer)]})
    assert logs, f"no purchase by {buyer}"
    return logs[-1]["transactionHash"]


def _approve_tx(url: str, token: str, owner: str) -> str:
    from eth_utils import keccak

    topic = "0x" + keccak(text="Approval(address,address,uint256)").hex()
    logs = rpc(url, "eth_getLogs", {"address": token, "fromBlock": "0x0",
                                    "topics": [topic, _topic(owner)]})
    return logs[-1]["transactionHash"]


def _status(url: str, contracts: dict[str, str], buyer: str) -> int:
    """The buyer's purchase status of model 1 on chain (0 none, 1 pending, 2 delivered)."""
    from eth_abi import decode, encode
    from eth_utils import function_signature_to_4byte_selector

    data = function_signature_to_4byte_selector("purchase(uint256,address)") + encode(
        ["uint256", "address"], [1, buyer])
    raw = rpc(url, "eth_call", {"to": contracts["ModelMarketplace"], "data": "0x" + data.hex()},
              "latest")
    return decode(["(uint8,uint64,uint64,uint128,bytes32)"], bytes.fromhex(raw[2:]))[0][0]


def _fund(test_chain: ChainUnderTest, index: int) -> None:
    from ape import networks

    from fl_agent.chain.client import FairFL
    from fl_agent.chain.deployment import load_deployment
    from fl_agent.chain.node import dev_account

    with networks.parse_network_choice(test_chain.url):
        fairfl = FairFL(load_deployment(test_chain.url, test_chain.deployments))
        fairfl.token.mint(address(index), 100 * FLT, sender=dev_account(0))
