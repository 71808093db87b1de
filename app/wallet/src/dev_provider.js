// Dev-account mode: a minimal EIP-1193 provider that forwards every request to the local
// chain's node (anvil), which signs for its unlocked dev accounts. It lets the app be tried
// without MetaMask. Python refuses it on any chain but the local one (31337); it is labelled
// in the page. Never point it at a node holding real keys.
import { getAddress } from "viem";

const LOCAL_CHAIN_ID = 31337n;
/** What a dev account may ask the node to sign or send. */
const SIGNING = new Set(["personal_sign", "eth_sign", "eth_signTypedData_v4",
                         "eth_sendTransaction"]);

/**
 * @param {string} rpcUrl
 * @param {string} account the dev account to act as
 */
export function devProvider(rpcUrl, account) {
  const address = getAddress(account);
  let nextId = 1;
  let checked;

  async function rpc(method, params) {
    let reply;
    try {
      reply = await fetch(rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
      });
    } catch (cause) {
      throw Object.assign(new Error(`cannot reach the local chain at ${rpcUrl}: ${cause}`),
                          { code: 4900 });
    }
    const body = await reply.json();
    if (body.error) throw Object.assign(new Error(body.error.message), body.error);
    return body.result;
  }

  /** The node itself must be the local chain before it is asked to sign anything. */
  function requireLocalNode() {
    checked ??= rpc("eth_chainId", []).then((id) => {
      if (BigInt(id) !== LOCAL_CHAIN_ID) {
        throw Object.assign(
          new Error(`the dev node at ${rpcUrl} is chain ${BigInt(id)}, not the local chain ` +
                    `${LOCAL_CHAIN_ID}: dev accounts are refused`), { code: 4901 });
      }
    });
    checked.catch(() => { checked = undefined; });  // ask again next time (node restarted)
    return checked;
  }

  return {
    isFairFLDevAccount: true,
    /** @param {{method: string, params?: unknown[]}} args */
    async request({ method, params = [] }) {
      switch (method) {
        case "eth_requestAccounts":
        case "eth_accounts":
          return [address];
        case "wallet_switchEthereumChain": {
          const current = await rpc("eth_chainId", []);
          if (BigInt(current) === BigInt(params[0]?.chainId)) return null;
          throw Object.assign(new Error(`the dev node is chain ${BigInt(current)}`),
                              { code: 4902 });
        }
        case "wallet_addEthereumChain":
          throw Object.assign(new Error("a dev account cannot add chains"), { code: 4200 });
        default:
          if (SIGNING.has(method)) {
            // Like a wallet, sign only as the account it holds (anvil signs for all ten).
            const signer = method === "eth_sendTransaction" ? params[0]?.from
              : method === "personal_sign" ? params[1] : params[0];
            if (String(signer).toLowerCase() !== address.toLowerCase()) {
              throw Object.assign(new Error(`the dev account is ${address}, not ${signer}`),
                                  { code: 4100 });
            }
            await requireLocalNode();
          }
          return rpc(method, params);
      }
    },
    // The node never changes accounts or chains under the page: nothing to emit.
    on() {},
    removeListener() {},
  };
}
