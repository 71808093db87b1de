// A test wallet for the browser tests: an EIP-1193 provider injected as window.ethereum with
// Playwright's page.add_init_script, before the page's own scripts. Test code, not the
// product's dev provider (app/wallet/src/dev_provider.js).
//
// It behaves like a browser wallet in the ways the wallet component relies on, and forwards
// the signing to anvil, which signs for its unlocked dev accounts:
// - eth_accounts is [] until eth_requestAccounts connects the configured account;
// - it starts on a configurable chain id (possibly not the app's) and implements
//   wallet_switchEthereumChain (4902 for a chain it does not know) and wallet_addEthereumChain,
//   emitting chainChanged;
// - window.__testWallet.rejectNext("personal_sign") makes the next call of that method fail
//   with 4001, as a user pressing "Reject" does; failNext(method, code, message) with any
//   EIP-1193 error (e.g. -32002 while another request waits in the wallet);
// - window.__testWallet.calls lists every method asked, in order.
//
// Configuration: window.__testWalletConfig = {rpcUrl, account, chainId, connected, canAddChains}
// set by an earlier init script.
(() => {
  const config = {
    chainId: 31337, connected: false, canAddChains: true, ...window.__testWalletConfig,
  };
  const account = config.account.toLowerCase();
  const known = new Set([config.chainId]);
  let chainId = config.chainId;
  let connected = config.connected;
  const failures = new Map();
  const listeners = { accountsChanged: new Set(), chainChanged: new Set() };
  const calls = [];
  let nextId = 1;

  const rpcError = (code, message, data) => Object.assign(new Error(message), { code, data });
  const emit = (event, value) => listeners[event]?.forEach((fn) => fn(value));
  const hex = (n) => `0x${n.toString(16)}`;

  async function anvil(method, params) {
    const reply = await fetch(config.rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
    });
    const body = await reply.json();
    if (body.error) throw rpcError(body.error.code, body.error.message, body.error.data);
    return body.result;
  }

  function requireConnected() {
    if (!connected) throw rpcError(4100, "the account is not connected: eth_requestAccounts first");
  }

  function requireAccount(address) {
    requireConnected();
    if (String(address).toLowerCase() !== account) {
      throw rpcError(4100, `this wallet does not hold ${address}`);
    }
  }

  async function handle(method, params) {
    switch (method) {
      case "eth_requestAccounts":
        if (!connected) {
          connected = true;
          emit("accountsChanged", [account]);
        }
        return [account];
      case "eth_accounts":
        return connected ? [account] : [];
      case "eth_chainId":
        return hex(chainId);
      case "net_version":
        return String(chainId);
      case "wallet_switchEthereumChain": {
        const wanted = Number(BigInt(params[0].chainId));
        if (!known.has(wanted)) throw rpcError(4902, `Unrecognized chain ID "${hex(wanted)}"`);
        if (wanted !== chainId) {
          chainId = wanted;
          emit("chainChanged", hex(chainId));
        }
        return null;
      }
      case "wallet_addEthereumChain": {
        const wanted = Number(BigInt(params[0].chainId));
        if (!config.canAddChains) throw rpcError(-32603, "this wallet cannot add chains");
        if (!params[0].rpcUrls?.length || !params[0].nativeCurrency?.symbol) {
          throw rpcError(-32602, "chain parameters are incomplete");
        }
        known.add(wanted);
        if (wanted !== chainId) {  // MetaMask switches to a chain it just added
          chainId = wanted;
          emit("chainChanged", hex(chainId));
        }
        return null;
      }
      case "personal_sign":
        requireAccount(params[1]);
        return anvil(method, params);
      case "eth_signTypedData_v4":
        requireAccount(params[0]);
        return anvil(method, params);
      case "eth_sendTransaction":
        requireAccount(params[0].from);
        return anvil(method, params);
      default:
        return anvil(method, params);
    }
  }

  const provider = {
    isTestWallet: true,
    async request({ method, params = [] }) {
      calls.push(method);
      const failure = failures.get(method);
      if (failure) {
        failures.delete(method);
        throw rpcError(failure.code, failure.message);
      }
      return handle(method, params);
    },
    on(event, fn) {
      listeners[event]?.add(fn);
      return provider;
    },
    removeListener(event, fn) {
      listeners[event]?.delete(fn);
      return provider;
    },
  };

  window.ethereum = provider;
  window.__testWallet = {
    calls,
    rejectNext(method) {
      failures.set(method, { code: 4001, message: "User rejected the request." });
    },
    failNext(method, code, message) {
      failures.set(method, { code, message });
    },
    get chainId() {
      return chainId;
    },
  };
})();
