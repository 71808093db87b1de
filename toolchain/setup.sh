#!/usr/bin/env bash
# Bootstraps everything FairFL needs, idempotently: the Python venv, the npm toolchain
# (solc wasm, anvil, OpenZeppelin), the app's wallet component bundle, the solc bridge for
# ape-solidity, anvil on PATH, and the ape dependencies. Safe to run again; each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV="$ROOT/.venv"
SOLC_VERSION=0.8.37

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# 1. npm packages, from the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci (solc $SOLC_VERSION wasm, anvil, OpenZeppelin, UnixFS importer, esbuild, viem, @noble)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# 2. The app's wallet component: its JS and npm dependencies bundled into one file (never
#    committed), rebuilt when a source or the lock file is newer than the bundle.
WALLET_JS=app/wallet/dist/wallet.js
if [ ! -f "$WALLET_JS" ] || [ -n "$(find app/wallet/src app/wallet/build.mjs package-lock.json -newer "$WALLET_JS" -print -quit)" ]; then
  log "bundling the wallet component (esbuild: viem, @noble) into $WALLET_JS"
  npm run --silent build:wallet
fi

# 3. The Python environment, with pinned versions.
STAMP="$VENV/.fairfl-installed"
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ constraints.txt -nt "$STAMP" ]; then
  log "installing the project and its pinned dependencies into .venv (first time: a few minutes)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
  touch "$STAMP"
fi
# slither-analyzer (dev) depends on solc-select, whose `solc` console script would shadow every
# solc on PATH and try to download a compiler from binaries.soliditylang.org (step 5 would wait
# ~30 s for it on every run). Slither is given the wasm bridge explicitly (toolchain/slither.sh).
if grep -qs solc_select "$VENV/bin/solc"; then rm -f "$VENV/bin/solc"; fi

# 4. anvil on the venv's PATH (ape-foundry looks it up with shutil.which).
ln -sf "$ROOT/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil" "$VENV/bin/anvil"

# 5. The solc that py-solc-x will find: a native one if installed, else the wasm bridge.
SOLCX_DIR=${SOLCX_BINARY_PATH:-$HOME/.solcx}
mkdir -p "$SOLCX_DIR"
TARGET="$SOLCX_DIR/solc-v$SOLC_VERSION"
if command -v solc >/dev/null && solc --version 2>/dev/null | grep -q "Version: $SOLC_VERSION"; then
  [ -e "$TARGET" ] || { log "using native $(command -v solc)"; ln -sf "$(command -v solc)" "$TARGET"; }
elif [ ! -e "$TARGET" ] || grep -q "fairfl-solc-bridge" "$TARGET" 2>/dev/null; then
  # Shared by every clone on the machine (py-solc-x looks in one folder), so it prefers the
  # clone it is run from (ape runs it in the project folder) and only then the clone that
  # wrote it, which may since have been deleted.
  cat > "$TARGET" <<SH
#!/bin/sh
# fairfl-solc-bridge: npm's official solc $SOLC_VERSION (wasm) behind native solc's CLI.
for bridge in "\$PWD/toolchain/solc-wasm.cjs" "$ROOT/toolchain/solc-wasm.cjs"; do
  [ -f "\$bridge" ] && exec node "\$bridge" "\$@"
done
echo "fairfl-solc-bridge: no FairFL clone here or at $ROOT; run make setup in yours" >&2
exit 1
SH
  chmod +x "$TARGET"
fi

# 6. Chromium for the browser tests (Debian's package; Playwright never downloads browsers),
#    and nginx, which puts several app servers behind one address (app/serve.py, its tests).
#    FAIRFL_WITH_BROWSER=1 brings both; FAIRFL_WITH_NGINX=1 nginx alone.
MISSING=""
if [ "${FAIRFL_WITH_BROWSER:-0}" = 1 ] && [ ! -x /usr/bin/chromium ]; then MISSING="chromium"; fi
if [ "${FAIRFL_WITH_BROWSER:-0}" = 1 ] || [ "${FAIRFL_WITH_NGINX:-0}" = 1 ]; then
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || MISSING="$MISSING nginx-light"
fi
if [ -n "$MISSING" ]; then
  log "installing Debian's$MISSING for the UI tests"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  # shellcheck disable=SC2086  # one word per package
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $MISSING >/dev/null
  # Debian starts a system nginx on port 80 where systemd runs; FairFL starts its own.
  if [[ "$MISSING" == *nginx* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
fi

# 7. ape's copy of OpenZeppelin (read from node_modules, no network).
if [ ! -d "$HOME/.ape/packages/projects/@openzeppelin_contracts/5_7_0" ]; then
  log "ape pm install (OpenZeppelin from node_modules)"
  "$VENV/bin/ape" pm install >/dev/null
fi
log "ready: .venv, anvil $("$VENV/bin/anvil" --version | head -1 | awk '{print $3}'), solc $("$TARGET" --version | tail -1 | awk '{print $2}')"
