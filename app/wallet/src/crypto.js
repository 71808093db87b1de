// The browser's half of the marketplace protocol (spec sections 1-3): the X25519 key derived
// from a wallet signature, opening a sealed content key, decrypting and checking a model.
// Pure functions over bytes, no DOM: the tests run them under node against Python's side
// (fl_agent/crypto/wallet_keys.py, fl_agent/market/sealing.py).
//
// All primitives are the audited @noble ones (X25519, HKDF-SHA256, AES-256-GCM, SHA-256),
// which also work where WebCrypto does not (a page served over plain http on a LAN address).
// Written here is only their composition and the safetensors header check, both this
// protocol's own.
import { gcm } from "@noble/ciphers/aes.js";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, hexToBytes, utf8ToBytes } from "@noble/hashes/utils.js";

import { WalletFailure } from "./errors.js";

export const WALLET_KEY_SALT = utf8ToBytes("fairfl/wallet-key/v1");
export const SEALED_KEY_INFO = utf8ToBytes("fairfl sealed content key v1");
const NONCE = 12;
const TAG = 16;
export const SEALED_KEY_BYTES = 32 + NONCE + 32 + TAG;

/**
 * The X25519 key pair derived from a 65-byte `r || s || v` personal_sign signature (spec 1).
 * @param {Uint8Array} signature
 * @param {string} message the exact text that was signed
 * @returns {{privateKey: Uint8Array, publicKey: Uint8Array}}
 */
export function keyFromSignature(signature, message) {
  if (!(signature instanceof Uint8Array) || signature.length !== 65) {
    throw new WalletFailure(
      "rpc",
      `the wallet returned a signature of ${signature?.length} bytes, not 65: ` +
        "a key can only be derived from a plain account's (EOA) signature",
    );
  }
  const privateKey = hkdf(sha256, lowS(signature.subarray(0, 64)), WALLET_KEY_SALT,
                          utf8ToBytes(message), 32);
  return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
}

// The order of secp256k1's group.
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/**
 * `r || s` with `s` in the lower half of the group (EIP-2): `(r, s)` and `(r, n - s)` sign the
 * same message, and a wallet that returns the high form must derive the same key.
 * @param {Uint8Array} rs
 */
export function lowS(rs) {
  let s = BigInt(`0x${bytesToHex(rs.subarray(32, 64))}`);
  if (s > SECP256K1_N / 2n) s = SECP256K1_N - s;
  const out = new Uint8Array(64);
  out.set(rs.subarray(0, 32), 0);
  out.set(hexToBytes(s.toString(16).padStart(64, "0")), 32);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * `nonce(12) || AES-256-GCM(key, nonce, plaintext)` -> plaintext; throws `wrong_key`.
 * @param {Uint8Array} ciphertext
 * @param {Uint8Array} key
 */
export function decryptContent(ciphertext, key) {
  if (ciphertext.length < NONCE + TAG) {
    throw new WalletFailure("wrong_key", `ciphertext too short (${ciphertext.length} bytes)`);
  }
  try {
    return gcm(key, ciphertext.subarray(0, NONCE)).decrypt(ciphertext.subarray(NONCE));
  } catch (cause) {
    throw new WalletFailure(
      "wrong_key", "the content does not decrypt with this key (wrong key or tampered data)",
      { cause });
  }
}

/**
 * Opens `ephemeral_public(32) || nonce(12) || AES-GCM(wrap_key, content_key)` (spec 2).
 * @param {Uint8Array} sealed
 * @param {Uint8Array} privateKey the recipient's X25519 private key
 * @returns {Uint8Array} the 32-byte content key
 */
export function openSealedKey(sealed, privateKey) {
  if (sealed.length !== SEALED_KEY_BYTES) {
    throw new WalletFailure(
      "wrong_key", `a sealed key is ${SEALED_KEY_BYTES} bytes, got ${sealed.length}`);
  }
  const ephemeralPublic = sealed.subarray(0, 32);
  const recipientPublic = x25519.getPublicKey(privateKey);
  let shared;
  try {
    shared = x25519.getSharedSecret(privateKey, ephemeralPublic);
  } catch (cause) {
    throw new WalletFailure("wrong_key", "the sealed key holds an invalid X25519 point",
                            { cause });
  }
  const wrapKey = hkdf(sha256, shared, concat(ephemeralPublic, recipientPublic),
                       SEALED_KEY_INFO, 32);
  try {
    return decryptContent(sealed.subarray(32), wrapKey);
  } catch (cause) {
    throw new WalletFailure(
      "wrong_key", "the sealed key was not made for this wallet's key (or was tampered with)",
      { cause });
  }
}

/** Bytes per element of the safetensors dtypes. */
const DTYPE_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8,
};

function badWeights(message) {
  return new WalletFailure("bad_weights", `not the listed model: ${message}`);
}

/**
 * @typedef {{name: string, dtype: string, shape: number[]}} TensorInfo
 */

/**
 * Checks a safetensors document against the listing's `tensors` (spec 3): the header names
 * exactly these tensors with these dtypes and shapes (`__metadata__` aside), each tensor's
 * byte range fits its dtype and shape, and the ranges tile the data section exactly.
 * Throws a `bad_weights` WalletFailure otherwise.
 * @param {Uint8Array} bytes
 * @param {TensorInfo[]} tensors
 */
export function checkSafetensors(bytes, tensors) {
  if (!Array.isArray(tensors) || tensors.length === 0) {
    throw badWeights("the listing names no tensors");
  }
  if (bytes.length < 8) throw badWeights(`${bytes.length} bytes is no safetensors file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    throw badWeights(`the header says ${headerLength} bytes but the file has ${bytes.length}`);
  }
  const dataStart = 8 + Number(headerLength);
  let header;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true })
      .decode(bytes.subarray(8, dataStart)));
  } catch {
    throw badWeights("the header is not JSON");
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) {
    throw badWeights("the header is not a JSON object");
  }
  const expected = new Map();
  for (const t of tensors) {
    if (expected.has(t.name)) throw badWeights(`the listing names ${t.name} twice`);
    expected.set(t.name, t);
  }
  const names = Object.keys(header).filter((n) => n !== "__metadata__");
  const extra = names.filter((n) => !expected.has(n));
  const missing = [...expected.keys()].filter((n) => !Object.hasOwn(header, n));
  if (extra.length) throw badWeights(`unexpected tensors ${extra.join(", ")}`);
  if (missing.length) throw badWeights(`missing tensors ${missing.join(", ")}`);

  const ranges = [];
  for (const name of names) {
    const entry = header[name];
    const want = expected.get(name);
    if (entry?.dtype !== want.dtype) {
      throw badWeights(`tensor ${name} is ${entry?.dtype}, the listing says ${want.dtype}`);
    }
    const shape = entry.shape;
    if (!Array.isArray(shape) || shape.length !== want.shape.length
        || shape.some((d, i) => d !== want.shape[i])) {
      throw badWeights(`tensor ${name} has shape [${shape}], the listing says [${want.shape}]`);
    }
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2
        || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[1] < offsets[0]) {
      throw badWeights(`tensor ${name} has bad data offsets`);
    }
    const size = DTYPE_BYTES[entry.dtype];
    if (size === undefined) throw badWeights(`tensor ${name} has unknown dtype ${entry.dtype}`);
    const length = shape.reduce((n, d) => n * d, 1) * size;
    if (offsets[1] - offsets[0] !== length) {
      throw badWeights(`tensor ${name} holds ${offsets[1] - offsets[0]} bytes, ` +
                       `its shape needs ${length}`);
    }
    ranges.push(offsets);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  let end = 0;
  for (const [begin, stop] of ranges) {
    if (begin !== end) throw badWeights("the tensors do not tile the data section");
    end = stop;
  }
  if (end !== bytes.length - dataStart) {
    throw badWeights(`the data section is ${bytes.length - dataStart} bytes, ` +
                     `the tensors take ${end} (truncated or padded file)`);
  }
}

export function sha256Hex(bytes) {
  return bytesToHex(sha256(bytes));
}

/**
 * Everything `decrypt_download` checks, in order: open the sealed key (`wrong_key`), decrypt
 * (`wrong_key`), compare the listing's sha256 (`hash_mismatch`), check the header against
 * the listing's tensors (`bad_weights`). Returns the plaintext only if all pass.
 * @param {{privateKey: Uint8Array, sealedKey: Uint8Array, ciphertext: Uint8Array,
 *   plaintextSha256: string, tensors: TensorInfo[]}} args
 * @returns {{plaintext: Uint8Array, sha256: string}}
 */
export function openModel({ privateKey, sealedKey, ciphertext, plaintextSha256, tensors }) {
  const contentKey = openSealedKey(sealedKey, privateKey);
  const plaintext = decryptContent(ciphertext, contentKey);
  const digest = sha256Hex(plaintext);
  const listed = String(plaintextSha256).toLowerCase().replace(/^0x/, "");
  if (digest !== listed) {
    throw new WalletFailure(
      "hash_mismatch", `the decrypted model's sha256 is ${digest}, the listing says ${listed}`);
  }
  checkSafetensors(plaintext, tensors);
  return { plaintext, sha256: digest };
}
