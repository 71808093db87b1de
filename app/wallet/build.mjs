// Bundles the wallet component: src/wallet.js and its npm dependencies (viem, @noble/*) into
// one ES module, dist/wallet.js, which app/wallet/__init__.py hands to Streamlit.
//
//   node app/wallet/build.mjs             build (npm run build:wallet)
//   node app/wallet/build.mjs --if-stale  build only if dist is missing or older than a source
import { readdirSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "dist", "wallet.js");
const sources = [
  fileURLToPath(import.meta.url),
  join(here, "..", "..", "package-lock.json"),
  ...readdirSync(join(here, "src")).map((name) => join(here, "src", name)),
];

function stale() {
  let built;
  try {
    built = statSync(out).mtimeMs;
  } catch {
    return true;
  }
  return sources.some((file) => statSync(file).mtimeMs > built);
}

if (process.argv.includes("--if-stale") && !stale()) process.exit(0);

const tmp = `${out}.${process.pid}.tmp`;
const result = await build({
  entryPoints: [join(here, "src", "wallet.js")],
  outfile: tmp,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  legalComments: "eof",
  metafile: true,
  logLevel: "warning",
});
renameSync(tmp, out);  // atomic: a running app never reads half a bundle
const bytes = Object.values(result.metafile.outputs)[0].bytes;
console.log(`wallet component: ${out} (${(bytes / 1024).toFixed(1)} KiB)`);
