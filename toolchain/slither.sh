#!/usr/bin/env bash
# Slither (static analysis) over contracts/, offline, through the repo's solc bridge.
#
# The settings live in slither.config.json (read by slither from the repo root): standard-JSON
# mode, the OpenZeppelin remapping, node_modules and contracts/mocks left out of the findings,
# and failure on any finding of medium or high impact (there is no triage database: none is
# left). docs/SECURITY.md says why each remaining low or informational finding is accepted.
# This script only supplies the compiler: a solc look-alike around toolchain/solc-wasm.cjs
# (npm's official wasm build), or $SLITHER_SOLC (e.g. a native solc 0.8.37) when set.
# Extra arguments go to slither, e.g. `toolchain/slither.sh --json slither.json`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SLITHER=${SLITHER:-$ROOT/.venv/bin/slither}
[ -x "$SLITHER" ] || { echo "slither not found at $SLITHER: run 'make setup'" >&2; exit 1; }

SOLC=${SLITHER_SOLC:-}
if [ -z "$SOLC" ]; then
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  SOLC="$TMP/solc"
  printf '#!/bin/sh\nexec node "%s/toolchain/solc-wasm.cjs" "$@"\n' "$ROOT" > "$SOLC"
  chmod +x "$SOLC"
fi

"$SLITHER" contracts/ --solc "$SOLC" "$@"
