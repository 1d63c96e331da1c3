#!/usr/bin/env bash
# Runs mnemo's whole test suite: unit tests and the end-to-end tests against
# real NATS and PostgreSQL (started by bootstrap.sh when they are down).
# Every e2e test works in its own namespace and deletes it afterwards.
# Ends with one summary line over every test binary: "N passed, N failed".
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
mkdir -p "$state"
"$repo/deploy/local/bootstrap.sh"
log="$state/test.log"
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
