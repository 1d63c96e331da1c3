#!/usr/bin/env bash
# Makes (or reuses) a venv with a requirements file's pins from PyPI, once
# per version of that file: the shared step of examples/python/setup.sh
# and crates/mnemo-bench/baseline/setup.sh, each of which keeps its own
# venv so their pins and the model tools' (deploy/model/prepare.sh) never
# constrain each other.
#
# Usage: pip-venv.sh LABEL VENV REQUIREMENTS IMPORTS
#   LABEL         what the messages say it is for ("examples")
#   VENV          the venv's folder
#   REQUIREMENTS  a pinned requirements.txt
#   IMPORTS       Python that must run in it afterwards ("import grpc")
# Idempotent: does nothing when VENV/.mnemo-pins names this REQUIREMENTS
# file's hash and IMPORTS runs. Prints the venv's python.
# Environment: PYTHON (default python3) makes the venv.
set -euo pipefail

[ $# -eq 4 ] || { echo "usage: $0 LABEL VENV REQUIREMENTS IMPORTS" >&2; exit 2; }
label="$1" venv="$2" req="$3" imports="$4"
python="${PYTHON:-python3}"
stamp="$venv/.mnemo-pins"
pins_id="$(sha256sum "$req" | cut -c1-16)"

say() { printf '[%s] %s\n' "$label" "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pins_id" ] \
   && "$venv/bin/python" -c "$imports" 2>/dev/null; then
  say "venv $venv already has the pinned packages"
else
  if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || die "$python not found (set PYTHON=...)"
    say "creating venv $venv"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv" || die "python -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  rm -f "$stamp"
  say "installing $(grep -v '^#' "$req" | tr '\n' ' ')from PyPI"
  "$venv/bin/python" -m pip --disable-pip-version-check --no-input -q install -r "$req" \
    || die "pip install -r $req failed"
  "$venv/bin/python" -c "$imports" || die "the packages are still not importable from $venv"
  printf '%s\n' "$pins_id" >"$stamp"
fi
echo "$venv/bin/python"
