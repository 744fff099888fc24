#!/usr/bin/env bash
# Installs the Debian packages Backflow builds and tests with, when missing.
# Runs apt-get as root (or through sudo); does nothing when all are present.
set -euo pipefail
packages=(
  build-essential pkg-config clang libclang-rt-14-dev openssl
  libsqlite3-dev sqlite3 libcurl4-openssl-dev libjansson-dev libsodium-dev libyaml-dev
  libssl-dev libpq-dev libhiredis-dev libmicrohttpd-dev libcriterion-dev libxxhash-dev libunistring-dev
  python3 valgrind postgresql redis-server prometheus chromium
  clang-format strace time man-db zsh
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node and npm run Meta's SDK in tests/integration/test_pii_meta_sdk.py. Checked
# by command, not by package: a machine with NodeSource's nodejs (which bundles
# npm) must not get Debian's npm package, which conflicts with it.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
