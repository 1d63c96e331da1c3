#!/usr/bin/env bash
# Makes the Python example's own venv ($MNEMO_STATE_DIR/venv-examples,
# default <repo>/.mnemo/venv-examples) with examples/python/requirements.txt
# from PyPI: grpcio and grpcio-tools, which generates the stubs from protos/.
# Its own venv, so the model tools' pins (deploy/model/prepare.sh) and the
# example's never constrain each other.
#
# Idempotent: does nothing when the venv already has the pinned packages.
# Prints the python to run the example with.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
venv="$state/venv-examples"
python="${PYTHON:-python3}"
req="$here/requirements.txt"
stamp="$venv/.mnemo-pins"
pins_id="$(sha256sum "$req" | cut -c1-16)"

say() { printf '[examples] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pins_id" ] \
   && "$venv/bin/python" -c 'import grpc, grpc_tools' 2>/dev/null; then
  say "venv $venv already has the example's packages"
else
  if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || die "$python not found (set PYTHON=...)"
    say "creating venv $venv"
    mkdir -p "$state"
    "$python" -m venv "$venv" || die "python -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  rm -f "$stamp"
  say "installing $(grep -v '^#' "$req" | tr '\n' ' ')from PyPI"
  "$venv/bin/python" -m pip --disable-pip-version-check --no-input -q install -r "$req" \
    || die "pip install -r $req failed"
  "$venv/bin/python" -c 'import grpc, grpc_tools' || die "grpcio is still not importable from $venv"
  printf '%s\n' "$pins_id" >"$stamp"
fi
echo "$venv/bin/python"
