// The FairFL wallet component (Streamlit components v2: no iframe, so this runs in the page and
// sees the wallet's injected `window.ethereum`).
//
// Python mounts it on every run with `data = {key, request, chain, dev}`. Streamlit calls the
// default export again whenever `data` changes and the module stays loaded for the page's
// life, so everything that must survive a rerun lives at module level: the ids of requests
// already taken (each request runs exactly once, one at a time), the derived keys (actions.js)
// and one set of wallet listeners per provider.
import { getAddress } from "viem";

import { requester, runAction } from "./actions.js";
import { devProvider } from "./dev_provider.js";
import { classify, errorPayload, WalletFailure } from "./errors.js";

// The protocol functions and the error kinds, for the tests that run this bundle under node.
export { requester } from "./actions.js";
export {
  checkSafetensors, decryptContent, keyFromSignature, openModel, openSealedKey,
} from "./crypto.js";
export { classify } from "./errors.js";

const LOCAL_CHAIN_ID = 31337;

/** Request ids taken, ever, in this page. */
const taken = new Set();
/** The answers, by request id: a wallet mounted again (its state reset) gets them again. */
const answers = new Map();
/** One request at a time, in the order they came. */
let queue = Promise.resolve();
/** Per mounted wallet (Python's key): the latest Streamlit callbacks, status and view. */
const instances = new Map();
const listening = new WeakSet();
const devProviders = new Map();

function providerFor(chain, dev) {
  if (dev) {
    // Python refuses dev mode elsewhere; this is a second lock on the same door.
    if (chain.chain_id !== LOCAL_CHAIN_ID) return { provider: null, mode: "none" };
    const id = `${chain.rpc_url}|${dev.account}`;
    if (!devProviders.has(id)) devProviders.set(id, devProvider(chain.rpc_url, dev.account));
    return { provider: devProviders.get(id), mode: "dev" };
  }
  const injected = globalThis.window?.ethereum;
  return injected ? { provider: injected, mode: "injected" } : { provider: null, mode: "none" };
}

const short = (a) => `${a.slice(0, 6)}…${a.slice(-4)}`;

function statusLine(instance) {
  const { status, chain, dev } = instance;
  if (status.mode === "none") {
    return dev
      ? { tone: "bad", text: `Dev accounts work only on the local chain (${LOCAL_CHAIN_ID}).` }
      : { tone: "bad", text: "No wallet found: install MetaMask (or another browser wallet) " +
                              "and reload this page." };
  }
  const parts = [];
  if (status.mode === "dev") parts.push("DEV ACCOUNT (local chain only, not a real wallet)");
  else parts.push("Wallet found");
  parts.push(status.account ? `account ${short(status.account)}` : "not connected");
  if (status.chain_id === null) parts.push("chain unknown");
  else if (status.chain_id === chain.chain_id) parts.push(`on ${chain.chain_name}`);
  else parts.push(`on chain ${status.chain_id}, not ${chain.chain_name} (${chain.chain_id})`);
  const ok = status.account && status.chain_id === chain.chain_id;
  return { tone: status.mode === "dev" ? "dev" : ok ? "ok" : "warn", text: parts.join(" · ") };
}

function render(instance) {
  const { tone, text } = statusLine(instance);
  instance.view.dataset.tone = tone;
  instance.view.textContent = text;
}

/** Tells Python the status if it changed since the last time it was told. */
function report(instance) {
  render(instance);
  const json = JSON.stringify(instance.status);
  if (json !== instance.reported) {
    instance.reported = json;
    instance.setStateValue("status", instance.status);
  }
}

function normalize(accounts, chainId) {
  return {
    account: accounts?.length ? getAddress(accounts[0]) : null,
    chain_id: chainId === undefined || chainId === null ? null : Number(BigInt(chainId)),
  };
}

/** Reads account and chain without asking the user anything (`eth_accounts`, not a prompt). */
async function refresh(instance) {
  if (!instance.provider) return report(instance);
  try {
    const call = requester(instance.provider);
    const [accounts, chainId] = await Promise.all([call("eth_accounts"), call("eth_chainId")]);
    Object.assign(instance.status, normalize(accounts, chainId));
  } catch (err) {
    console.warn("FairFL wallet: cannot read the wallet's status", err);
  }
  report(instance);
}

function listen(provider) {
  if (listening.has(provider) || typeof provider.on !== "function") return;
  listening.add(provider);
  const each = (update) => {
    for (const instance of instances.values()) {
      if (instance.provider === provider) {
        update(instance);
        report(instance);
      }
    }
  };
  provider.on("accountsChanged", (accounts) => each((i) => {
    i.status.account = normalize(accounts).account;
  }));
  provider.on("chainChanged", (chainId) => each((i) => {
    i.status.chain_id = normalize(null, chainId).chain_id;
  }));
}

async function run(instance, request) {
  let response;
  try {
    if (!instance.provider) {
      throw new WalletFailure("no_wallet", instance.dev
        ? `dev accounts work only on the local chain (${LOCAL_CHAIN_ID})`
        : "no wallet in this browser: install MetaMask (or another EIP-1193 wallet)");
    }
    const result = await runAction(requester(instance.provider), instance.chain, request);
    response = { id: request.id, ok: true, result };
  } catch (err) {
    const failure = classify(err);
    if (failure.kind === "rpc") console.error("FairFL wallet:", request.action, err);
    response = { id: request.id, ok: false, error: errorPayload(failure) };
  }
  answers.set(request.id, response);
  // The mount that asked may have been replaced by now: answer through the latest one.
  const current = instances.get(instance.id) ?? instance;
  await refresh(current);
  current.setStateValue("response", response);
}

/** @param {import("@streamlit/component-v2-lib").FrontendRendererArgs} args */
export default function mountWallet({ data, parentElement, setStateValue }) {
  const { key, request, chain, dev } = data;
  let view = parentElement.querySelector(".fairfl-wallet-status");
  if (!view) {
    view = document.createElement("div");
    view.className = "fairfl-wallet-status";
    view.setAttribute("role", "status");
    view.setAttribute("aria-label", "Wallet status");
    parentElement.appendChild(view);
  }
  const { provider, mode } = providerFor(chain, dev);
  const previous = instances.get(key);
  // Streamlit calls this again when `data` changes (same view) and when the wallet is
  // mounted anew (a new view, and a component state Streamlit has reset).
  const newMount = !previous || previous.view !== view;
  const sameWallet = previous && previous.provider === provider;
  const instance = {
    id: key, chain, dev, provider, view, setStateValue,
    status: sameWallet ? previous.status : { available: !!provider, account: null,
                                             chain_id: null, mode },
    reported: sameWallet && !newMount ? previous.reported : undefined,
  };
  instances.set(key, instance);
  if (provider) listen(provider);
  refresh(instance);

  if (request && !taken.has(request.id)) {
    taken.add(request.id);
    // A failure here must not stop the queue: later requests still run.
    queue = queue.then(() => run(instance, request))
      .catch((err) => console.error("FairFL wallet: cannot answer", request.id, err));
  } else if (request && newMount && answers.has(request.id)) {
    setStateValue("response", answers.get(request.id));  // answered before; never run twice
  }
  return () => {
    if (instances.get(key) === instance) instances.delete(key);
  };
}
