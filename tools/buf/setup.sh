#!/usr/bin/env bash
# Installs the pinned buf CLI from the npm registry (package-lock.json) into
# tools/buf/node_modules: .ci/run lints protos/ and checks breaking changes
# with it; the test suite runs `buf curl` against a real server.
# Idempotent (deploy/local/npm-ci.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/../../deploy/local/npm-ci.sh" "$here"
