// Errors of the wallet component: every failure reaches Python as {code, kind, message, data}.
import {
  ExecutionRevertedError,
  ResourceUnavailableRpcError,
  SwitchChainError,
  UserRejectedRequestError,
} from "viem";

/**
 * What went wrong, in words Python can turn into advice:
 * - `no_wallet`: no `window.ethereum` and no dev account;
 * - `rejected`: the user said no in the wallet (EIP-1193 4001);
 * - `unknown_chain`: the wallet does not know the chain and did not add it (4902);
 * - `pending`: the wallet already shows a request to answer first (-32002);
 * - `reverted`: the transaction would revert; `data` holds the revert data (custom error);
 * - `wrong_key`, `hash_mismatch`, `bad_weights`: a download did not check out;
 * - `bad_request`: Python sent a request this component cannot run;
 * - `rpc`: anything else, with the wallet's message.
 * @typedef {"no_wallet"|"rejected"|"unknown_chain"|"pending"|"reverted"|"wrong_key"|
 *   "hash_mismatch"|"bad_weights"|"bad_request"|"rpc"} ErrorKind
 */

export class WalletFailure extends Error {
  /**
   * @param {ErrorKind} kind
   * @param {string} message
   * @param {{code?: number|null, data?: unknown, cause?: unknown}} [extra]
   */
  constructor(kind, message, { code = null, data = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "WalletFailure";
    this.kind = kind;
    this.code = code;
    this.data = data;
  }
}

const HEX = /^0x[0-9a-fA-F]*$/;

/** The error and its causes, outermost first (viem wraps the provider's error as `cause`). */
function chain(err) {
  const out = [];
  for (let e = err; e && typeof e === "object" && out.length < 10; e = e.cause) out.push(e);
  return out;
}

/** Every object a wallet may have nested an error in: viem's `cause`, MetaMask's `data` and
 * `data.originalError`, ethers' `error`. */
function nested(err) {
  const out = [];
  for (const e of chain(err)) {
    out.push(e);
    for (const inner of [e.data, e.data?.originalError, e.error]) {
      if (inner && typeof inner === "object") out.push(inner);
    }
  }
  return out;
}

/** The EIP-1193 / JSON-RPC codes of a provider error, outermost first. */
export function errorCodes(err) {
  return nested(err).map((e) => e.code).filter((c) => Number.isInteger(c) && c !== -1);
}

/** Revert data (hex) wherever a node or wallet put it. */
export function revertData(err) {
  for (const e of nested(err)) {
    if (typeof e.data === "string" && HEX.test(e.data) && e.data.length > 2) return e.data;
  }
  return null;
}

function messages(err) {
  return nested(err).map((e) => e.details || e.shortMessage || e.message)
    .filter((m) => typeof m === "string" && m);
}

/**
 * A WalletFailure for any error thrown while talking to the wallet.
 * @param {unknown} err
 * @returns {WalletFailure}
 */
export function classify(err) {
  if (err instanceof WalletFailure) return err;
  const codes = errorCodes(err);
  const texts = messages(err);
  const message = texts.at(-1) || String(err);  // the innermost: the wallet's or node's own
  const has = (code) => codes.includes(code);
  const code = codes[0] ?? null;
  if (has(UserRejectedRequestError.code) || has(5000)) {
    return new WalletFailure("rejected", `rejected in the wallet: ${message}`,
                             { code: UserRejectedRequestError.code, cause: err });
  }
  if (has(ResourceUnavailableRpcError.code)) {
    return new WalletFailure("pending", `the wallet is busy with an earlier request: ${message}`,
                             { code: ResourceUnavailableRpcError.code, cause: err });
  }
  if (has(SwitchChainError.code)) {
    return new WalletFailure("unknown_chain", `the wallet does not know the chain: ${message}`,
                             { code: SwitchChainError.code, cause: err });
  }
  if (has(ExecutionRevertedError.code)
      || texts.some((t) => ExecutionRevertedError.nodeMessage.test(t))) {
    return new WalletFailure("reverted", `the transaction would revert: ${message}`,
                             { code, data: revertData(err), cause: err });
  }
  return new WalletFailure("rpc", message, { code, data: revertData(err), cause: err });
}

/** The JSON-ready `error` of a response. */
export function errorPayload(failure) {
  return { code: failure.code, kind: failure.kind, message: failure.message, data: failure.data };
}
