#!/usr/bin/env bash
# `make app`: the Streamlit app on http://localhost:8501. On the local chain it also runs the
# seller's key agent (`fl-agent market serve --account TEST::0`, the account `make demo` lists
# with) in the background, so that a model bought in the app gets its key; both stop together.
# FAIRFL_APP_WORKERS=N (N >= 2) runs N app servers behind nginx instead of one, each user kept
# on one server by a cookie (app/serve.py; for many concurrent users, docs/load.md).
set -euo pipefail
cd "$(dirname "$0")/.."
NETWORK=${FAIRFL_NETWORK:-ethereum:local:node}
AGENT_PID=""
if [ "$NETWORK" = "ethereum:local:node" ] && [ -f deployments/local.json ]; then
  mkdir -p .fairfl
  fl-agent market serve --account "${FAIRFL_SELLER:-TEST::0}" >> .fairfl/key-agent.log 2>&1 &
  AGENT_PID=$!
  echo "key agent running (pid $AGENT_PID, log .fairfl/key-agent.log)"
fi
trap '[ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null || true' EXIT
WORKERS=${FAIRFL_APP_WORKERS:-1}
case "$WORKERS" in
  ''|*[!0-9]*) echo "FAIRFL_APP_WORKERS must be a whole number (1 for one server), not '$WORKERS'" >&2
               exit 2 ;;
esac
if [ "$WORKERS" -gt 1 ]; then
  # Every interface, as `streamlit run` listens by default.
  python app/serve.py --workers "$WORKERS" --address 0.0.0.0 -- --client.toolbarMode minimal "$@"
else
  streamlit run app/main.py --browser.gatherUsageStats false --client.toolbarMode minimal "$@"
fi
