#!/usr/bin/env bash
# Installs a folder's npm packages exactly as its package-lock.json pins them
# (npm ci, from the npm registry), once per lockfile: a stamp in
# node_modules says which lockfile the install was made from.
# Usage: deploy/local/npm-ci.sh DIR   (tools/buf, examples/typescript)
set -euo pipefail
dir="${1:?usage: npm-ci.sh DIR}"
cd "$dir"
say() { printf '[%s] %s\n' "$(basename "$PWD")" "$*" >&2; }
command -v npm >/dev/null || { say "error: npm not found (Debian: apt-get install nodejs npm)"; exit 1; }
stamp="node_modules/.mnemo-lock"
lock_id="$(sha256sum package-lock.json | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_id" ]; then
  say "installing the locked packages"
  npm ci --no-audit --no-fund --silent
  printf '%s\n' "$lock_id" >"$stamp"
fi
