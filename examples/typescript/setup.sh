#!/usr/bin/env bash
# Installs the TypeScript example's packages from the npm registry (exact
# versions, package-lock.json) and generates its clients from protos/
# (`npm run generate`: protoc-gen-es through buf, into gen/).
#
# Idempotent: npm ci runs again only when the lockfile changed; the clients
# are generated every time (a second; they must follow protos/).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
say() { printf '[examples/typescript] %s\n' "$*" >&2; }
command -v npm >/dev/null || { say "error: npm not found (Debian: apt-get install nodejs npm)"; exit 1; }
stamp="node_modules/.mnemo-lock"
lock_id="$(sha256sum package-lock.json | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_id" ]; then
  say "installing the locked packages"
  npm ci --no-audit --no-fund --silent
  printf '%s\n' "$lock_id" >"$stamp"
fi
rm -rf gen
npm run --silent generate
say "clients generated into $here/gen"
