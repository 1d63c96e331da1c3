#!/usr/bin/env bash
# Starts mnemo locally and ingests sample documents with live progress.
#
#   1. builds the web app (web/build.sh, npm) and the `mnemo` binary
#      (release) that embeds it; bootstrap.sh: mnemo's secured
#      NATS (credentials per role), PostgreSQL (a least-privilege role),
#      poppler-utils (installed and started if needed);
#      deploy/model/prepare.sh: the embedding model, offline
#   2. declares the namespace as the operator (`mnemo nats setup`) and starts
#      `mnemo serve all` in the background, each service signed in as its
#      own role (log: .mnemo/serve.log, pid: .mnemo/serve.pid)
#   3. uploads the PDFs in ../shared/corpus/pdf when that folder exists, else
#      the sample notes in deploy/local/samples, with one live bar per file
#
# Stop the server with: kill "$(cat .mnemo/serve.pid)"
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
mkdir -p "$state"

# The web app first: the binary embeds what web/dist holds.
"$repo/web/build.sh"
cargo build --release --locked -p mnemo
target="${CARGO_TARGET_DIR:-$repo/target}"
mnemo="$target/release/mnemo"
# The bootstrap makes the NATS credentials with this binary.
MNEMO_BIN="$mnemo" "$repo/deploy/local/bootstrap.sh"
"$repo/deploy/model/prepare.sh" >/dev/null
# shellcheck disable=SC1091
. "$state/model.env"
# Where NATS and PostgreSQL are and how the services sign in there.
set -a
# shellcheck disable=SC1091
. "$state/services.env"
set +a
# The operator declares the namespace's streams (services may not).
"$mnemo" nats setup >/dev/null

if [ -f "$state/serve.pid" ] && kill -0 "$(cat "$state/serve.pid")" 2>/dev/null; then
  echo "mnemo already running (pid $(cat "$state/serve.pid")); restarting it"
  kill "$(cat "$state/serve.pid")"
  while kill -0 "$(cat "$state/serve.pid")" 2>/dev/null; do sleep 0.1; done
fi
# The API also loads the second (int8) model, so that after `mnemo backfill
# embed` an operator can switch search to it (`mnemo model use`).
nohup "$mnemo" serve all --extra-model-dir "$MNEMO_BACKFILL_MODEL_DIR" >"$state/serve.log" 2>&1 &
echo $! >"$state/serve.pid"

# Wait until the API answers (bounded): `docs list` needs API + PostgreSQL.
for _ in $(seq 1 100); do
  "$mnemo" docs list >/dev/null 2>&1 && break
  kill -0 "$(cat "$state/serve.pid")" 2>/dev/null || { cat "$state/serve.log"; exit 1; }
  sleep 0.2
done

corpus="$repo/../shared/corpus/pdf"
if [ -d "$corpus" ]; then
  files=("$corpus"/*.pdf)
else
  files=("$repo"/deploy/local/samples/*)
fi
echo "uploading ${#files[@]} files to mnemo (server log: $state/serve.log)"
# Every file ends indexed, or failed with the reason (the corpus has broken
# PDFs on purpose).
"$mnemo" upload --watch "${files[@]}" || true
"$mnemo" docs list
echo
echo "mnemo is running (pid $(cat "$state/serve.pid")). Try: $mnemo docs list --json"
echo "The web app, signed in as $(printf '%s' "${MNEMO_OWNER:-local}"):"
"$mnemo" token issue --owner "${MNEMO_OWNER:-local}" --link
echo "Stop it with: kill \$(cat $state/serve.pid)"
