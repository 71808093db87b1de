// The requests Python can send, each run against an EIP-1193 provider. Python builds every
// message, typed-data document and calldata; this side only asks the wallet, derives keys and
// checks downloads. What goes back to Python: hashes, signatures, public keys, statuses. Wallet
// keys never leave the wallet, and derived private keys and content keys never leave this
// module.
import { bytesToHex, custom, getAddress, hexToBytes, isHex, numberToHex, stringToHex }
  from "viem";

import { x25519 } from "@noble/curves/ed25519.js";

import { keyFromSignature, openModel } from "./crypto.js";
import { classify, WalletFailure } from "./errors.js";

/**
 * @typedef {{chain_id: number, chain_name: string, rpc_url: string, currency: string}} Chain
 * @typedef {{id: string, action: string, params: Record<string, any>}} WalletRequest
 */

/** The first lines of the key messages (fl_agent/crypto/wallet_keys.py). */
const KEY_MESSAGES = ["FairFL: unlock a model you buy", "FairFL: read the models you train"];

/** Derived X25519 private keys, by account and key message; module memory only. */
const derivedKeys = new Map();
const keyId = (account, message) => `${account.toLowerCase()}\n${message}`;

/** viem's EIP-1193 request with its error types (rejections, 4902, ...); no retries. */
export function requester(provider) {
  const { request } = custom(provider, { retryCount: 0 })({});
  return (method, params = []) => request({ method, params });
}

function need(params, name, check = (v) => v !== undefined && v !== null) {
  if (!check(params[name])) {
    throw new WalletFailure("bad_request", `request parameter "${name}" is missing or invalid`);
  }
  return params[name];
}
const isText = (v) => typeof v === "string" && v.length > 0;
const isHexBytes = (v) => typeof v === "string" && isHex(v, { strict: true });

async function currentAccount(call) {
  let accounts = await call("eth_accounts");
  if (!accounts?.length) accounts = await call("eth_requestAccounts");
  if (!accounts?.length) throw new WalletFailure("rpc", "the wallet gave no account");
  return getAddress(accounts[0]);
}

async function personalSign(call, message) {
  const account = await currentAccount(call);
  const signature = await call("personal_sign", [stringToHex(message), account]);
  return { account, signature };
}

async function deriveKey(call, message) {
  const { account, signature } = await personalSign(call, message);
  const { privateKey, publicKey } = keyFromSignature(hexToBytes(signature), message);
  derivedKeys.set(keyId(account, message), privateKey);
  return { account, publicKey: bytesToHex(publicKey) };
}

function base64ToBytes(text) {
  try {
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    throw new WalletFailure("bad_request", "ciphertext is not base64");
  }
}

function safeFilename(name) {
  const base = String(name || "model.safetensors").split(/[\\/]/).pop().replace(/[^\w.-]/g, "_");
  return base.replace(/^\.+/, "") || "model.safetensors";
}

/** Hands bytes to the browser as a file download (a Blob behind a temporary link). */
function download(bytes, filename) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.style.display = "none";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);  // the download must start first
}

async function ensureChain(call, chain) {
  const target = numberToHex(chain.chain_id);
  const onChain = async () => BigInt(await call("eth_chainId")) === BigInt(chain.chain_id);
  if (await onChain()) return { chainId: chain.chain_id };
  try {
    await call("wallet_switchEthereumChain", [{ chainId: target }]);
  } catch (err) {
    const failure = classify(err);
    if (failure.kind !== "unknown_chain") throw failure;
    try {
      await call("wallet_addEthereumChain", [{
        chainId: target,
        chainName: chain.chain_name,
        rpcUrls: [chain.rpc_url],
        nativeCurrency: { name: chain.currency, symbol: chain.currency, decimals: 18 },
      }]);
    } catch (addErr) {
      const addFailure = classify(addErr);
      if (addFailure.kind === "rejected" || addFailure.kind === "pending") throw addFailure;
      throw new WalletFailure(
        "unknown_chain", `the wallet does not know chain ${chain.chain_id} and could not add ` +
          `it: ${addFailure.message}`, { code: 4902, cause: addErr });
    }
    // Adding a chain usually switches to it; a wallet that only adds is asked again.
    if (!(await onChain())) await call("wallet_switchEthereumChain", [{ chainId: target }]);
  }
  if (!(await onChain())) {
    throw new WalletFailure("unknown_chain", `the wallet is still not on chain ${chain.chain_id}`,
                            { code: 4902 });
  }
  return { chainId: chain.chain_id };
}

async function sendTransaction(call, params) {
  const tx = {
    from: getAddress(need(params, "from", isText)),
    to: getAddress(need(params, "to", isText)),
    data: need(params, "data", isHexBytes),
  };
  const value = params.value ?? 0;
  if (value !== 0 && value !== "0x0") {
    tx.value = typeof value === "string" ? value : numberToHex(BigInt(value));
  }
  // Dry run first, as dapps do: a revert then comes back with its data (the custom error),
  // instead of a failed transaction mined at the user's cost.
  try {
    await call("eth_call", [tx, "latest"]);
  } catch (err) {
    const failure = classify(err);
    if (failure.kind === "rpc" && failure.data) failure.kind = "reverted";
    throw failure;
  }
  return { hash: await call("eth_sendTransaction", [tx]) };
}

async function decryptDownload(call, params) {
  const message = need(params, "message", isText);
  const account = await currentAccount(call);
  let privateKey = derivedKeys.get(keyId(account, message));
  if (!privateKey) {
    await deriveKey(call, message);
    privateKey = derivedKeys.get(keyId(account, message));
  }
  // The key the purchase was made with, when Python passes it: a wallet that signs the key
  // message differently now (another device, non-deterministic signatures) gets told so.
  if (params.buyerKey !== undefined && params.buyerKey !== null) {
    const now = bytesToHex(x25519.getPublicKey(privateKey));
    if (now.toLowerCase() !== String(params.buyerKey).toLowerCase()) {
      throw new WalletFailure("key_changed", `this wallet now derives the key ${now}, but the ` +
        `purchase was made with ${params.buyerKey}`);
    }
  }
  const { plaintext, sha256 } = openModel({
    privateKey,
    sealedKey: hexToBytes(need(params, "sealedKey", isHexBytes)),
    ciphertext: base64ToBytes(need(params, "ciphertext", (v) => typeof v === "string")),
    plaintextSha256: need(params, "plaintextSha256", isText),
    tensors: need(params, "tensors", Array.isArray),
  });
  const filename = safeFilename(params.filename);
  download(plaintext, filename);
  return { bytes: plaintext.length, sha256, filename };
}

/**
 * Runs one request; resolves to its `result` or throws a WalletFailure.
 * @param {(method: string, params?: unknown[]) => Promise<any>} call
 * @param {Chain} chain
 * @param {WalletRequest} request
 */
export async function runAction(call, chain, request) {
  const params = request.params ?? {};
  try {
    switch (request.action) {
      case "connect": {
        const accounts = await call("eth_requestAccounts");
        if (!accounts?.length) throw new WalletFailure("rpc", "the wallet gave no account");
        return { account: getAddress(accounts[0]), chainId: Number(await call("eth_chainId")) };
      }
      case "ensure_chain":
        return await ensureChain(call, chain);
      case "sign_message": {
        const message = need(params, "message", isText);
        // A key message's signature IS the key: it only ever goes through derive_key, which
        // keeps the derived key in this page and returns the public half.
        if (KEY_MESSAGES.some((head) => message.startsWith(head))) {
          throw new WalletFailure("bad_request",
                                  "refused: this text derives a key; use derive_key");
        }
        return await personalSign(call, message);
      }
      case "derive_key":
        return await deriveKey(call, need(params, "message", isText));
      case "sign_typed_data": {
        const typedData = need(params, "typedData");
        const account = await currentAccount(call);
        const json = typeof typedData === "string" ? typedData : JSON.stringify(typedData);
        return { account, signature: await call("eth_signTypedData_v4", [account, json]) };
      }
      case "send_transaction":
        return await sendTransaction(call, params);
      case "decrypt_download":
        return await decryptDownload(call, params);
      default:
        throw new WalletFailure("bad_request", `unknown action ${JSON.stringify(request.action)}`);
    }
  } catch (err) {
    throw classify(err);
  }
}
