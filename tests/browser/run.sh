#!/usr/bin/env bash
# Browser tests of the dashboard and the studio: Debian's chromium driven by playwright-core.
# Fails (never skips) when chromium or node is missing: scripts/deps.sh installs both.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
chrome="${CHROMIUM:-/usr/bin/chromium}"
if ! command -v node >/dev/null || [ ! -x "$chrome" ]; then
  echo "FAIL browser test: needs node and $chrome (make deps, or apt-get install -y chromium nodejs npm)" >&2
  exit 1
fi
cd "$here"
[ -d node_modules/playwright-core ] || npm install --no-audit --no-fund --silent
node dashboard.test.mjs
exec node studio.test.mjs
