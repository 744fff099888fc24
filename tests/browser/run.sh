#!/usr/bin/env bash
# Browser tests of the dashboard and the studio: Debian's chromium driven by playwright-core.
# Skips (exit 0, with a message) when chromium or node is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
chrome="${CHROMIUM:-/usr/bin/chromium}"
if ! command -v node >/dev/null || [ ! -x "$chrome" ]; then
  echo "SKIP browser test: needs node and $chrome (apt-get install -y chromium nodejs npm)"
  exit 0
fi
cd "$here"
[ -d node_modules/playwright-core ] || npm install --no-audit --no-fund --silent
node dashboard.test.mjs
exec node studio.test.mjs
