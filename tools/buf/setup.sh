#!/usr/bin/env bash
# Installs the pinned buf CLI from the npm registry (package-lock.json) into
# tools/buf/node_modules: .ci/run lints protos/ and checks breaking changes
# with it; the test suite runs `buf curl` against a real server.
# Idempotent: npm ci runs again only when the lockfile changed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
command -v npm >/dev/null || { printf '[tools/buf] error: npm not found (Debian: apt-get install nodejs npm)\n' >&2; exit 1; }
stamp="node_modules/.mnemo-lock"
lock_id="$(sha256sum package-lock.json | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_id" ] || [ ! -x node_modules/.bin/buf ]; then
  printf '[tools/buf] installing the pinned buf\n' >&2
  npm ci --no-audit --no-fund --silent
  printf '%s\n' "$lock_id" >"$stamp"
fi
