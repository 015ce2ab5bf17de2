#!/usr/bin/env bash
# deps.sh - installs what building and testing tabsync needs on a fresh
# Debian machine (run as root): apt packages, then the npm packages of
# package.json. Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
          libuv1-dev libhttp-parser-dev libssl-dev nettle-dev zlib1g-dev libjansson-dev
          libmsgpack-dev libhiredis-dev liburing-dev libjemalloc-dev libsqlite3-dev libjwt-dev libcmocka-dev
          nodejs curl ca-certificates openssl chromium spin redis-server redis-tools)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing apt packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v npm >/dev/null || { echo "deps: npm not found (install Node.js 20 with npm)"; exit 1; }
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "deps: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi
