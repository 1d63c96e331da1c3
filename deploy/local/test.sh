#!/usr/bin/env bash
# Runs mnemo's whole test suite: unit tests and the end-to-end tests against
# real NATS and PostgreSQL (started by bootstrap.sh when they are down).
# Every e2e test works in its own namespace and deletes it afterwards.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
"$repo/deploy/local/bootstrap.sh"
exec cargo test --workspace --locked "$@"
