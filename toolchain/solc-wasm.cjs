#!/usr/bin/env node
// A native-solc look-alike around npm's official wasm compiler (package `solc`).
//
// Written by hand because nothing else does this: py-solc-x (used by
// ape-solidity) runs `solc-v<version> --version` and
// `solc-v<version> --standard-json --base-path <dir> ...` with the input JSON on
// stdin. The `solcjs` CLI shipped with the package prints a non-JSON banner and
// rejects `--allow-paths`, so it cannot stand in. This script answers both calls
// the way native solc does and resolves imports from the base and include paths.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

function parseArgs(argv) {
  const opts = { standardJson: false, version: false, basePath: null, includePaths: [], allowPaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => argv[++i];
    if (arg === "--version") opts.version = true;
    else if (arg === "--standard-json") opts.standardJson = true;
    else if (arg === "--base-path") opts.basePath = next();
    else if (arg === "--include-path") opts.includePaths.push(next());
    else if (arg === "--allow-paths") opts.allowPaths.push(...next().split(","));
    else if (arg.startsWith("--base-path=")) opts.basePath = arg.slice(12);
    else if (arg.startsWith("--include-path=")) opts.includePaths.push(arg.slice(15));
    else if (arg.startsWith("--allow-paths=")) opts.allowPaths.push(...arg.slice(14).split(","));
    else if (arg === "-") continue;
    else {
      process.stderr.write(`unrecognised option '${arg}'\n`);
      process.exit(1);
    }
  }
  return opts;
}

function importResolver(roots) {
  return (importPath) => {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((root) => path.resolve(root, importPath));
    for (const file of candidates) {
      if (fs.existsSync(file) && fs.statSync(file).isFile()) {
        return { contents: fs.readFileSync(file, "utf8") };
      }
    }
    return { error: `File not found: ${importPath} (searched ${roots.join(", ")})` };
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
    return;
  }
  if (!opts.standardJson) {
    process.stderr.write("only --version and --standard-json are supported by this bridge\n");
    process.exit(1);
  }
  const input = fs.readFileSync(0, "utf8");
  const roots = [opts.basePath || process.cwd(), ...opts.includePaths, ...opts.allowPaths];
  const output = solc.compile(input, { import: importResolver(roots) });
  process.stdout.write(output);
}

main();
