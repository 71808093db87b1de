// Runs the wallet bundle's protocol functions under node for test_js_parity.py and
// test_js_error_kinds.py.
//   node wallet_crypto.mjs <bundle>  < {"cases": [{"op": ..., ...}, ...]}
// Answers {"results": [{...} | {"error": {"kind", "message"}}, ...]} on stdout. Bytes travel
// as hex (keys, signatures) or base64 (files).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const wallet = await import(pathToFileURL(process.argv[2]).href);
const hex = (text) => Uint8Array.from(Buffer.from(text.replace(/^0x/, ""), "hex"));
const b64 = (text) => Uint8Array.from(Buffer.from(text, "base64"));
const toHex = (bytes) => Buffer.from(bytes).toString("hex");

function derive(c) {
  return wallet.keyFromSignature(hex(c.signature), c.message);
}

const ops = {
  derive: (c) => ({ publicKey: toHex(derive(c).publicKey) }),
  open_sealed_key: (c) => ({ contentKey: toHex(wallet.openSealedKey(hex(c.sealedKey),
                                                                    derive(c).privateKey)) }),
  decrypt_content: (c) => ({
    plaintext: Buffer.from(wallet.decryptContent(b64(c.ciphertext), hex(c.contentKey)))
      .toString("base64"),
  }),
  open_model: (c) => {
    const { plaintext, sha256 } = wallet.openModel({
      privateKey: derive(c).privateKey, sealedKey: hex(c.sealedKey),
      ciphertext: b64(c.ciphertext), plaintextSha256: c.plaintextSha256, tensors: c.tensors,
    });
    return { plaintext: Buffer.from(plaintext).toString("base64"), sha256 };
  },
  // What a provider's error becomes once it went through viem's EIP-1193 request, as in the
  // page: its kind, code and revert data.
  classify: async (c) => {
    const provider = { request: async () => { throw c.error; } };
    try {
      await wallet.requester(provider)("eth_sendTransaction", []);
    } catch (err) {
      const { kind, code, data } = wallet.classify(err);
      return { kind, code, data };
    }
    return { kind: null };
  },
  check_weights: (c) => {
    wallet.checkSafetensors(b64(c.bytes), c.tensors);
    return { ok: true };
  },
};

const { cases } = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const c of cases) {
  try {
    results.push(await ops[c.op](c));
  } catch (err) {
    results.push({ error: { kind: err.kind ?? "exception", message: String(err.message ?? err) } });
  }
}
process.stdout.write(JSON.stringify({ results }));
