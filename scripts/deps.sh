#!/usr/bin/env bash
# Installs the Debian packages Backflow builds and tests with, when missing.
# Runs apt-get as root (or through sudo); does nothing when all are present.
set -euo pipefail
packages=(
  build-essential pkg-config clang libclang-rt-14-dev openssl
  libsqlite3-dev sqlite3 libcurl4-openssl-dev libjansson-dev libsodium-dev libyaml-dev
  libpq-dev libhiredis-dev libmicrohttpd-dev libcriterion-dev
  python3 valgrind postgresql redis-server prometheus chromium
  clang-format strace time man-db zsh
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
