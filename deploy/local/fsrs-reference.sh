#!/usr/bin/env bash
# Installs py-fsrs 6.3.2 (PyPI `fsrs`, pure Python, needs only
# typing-extensions), the reference FSRS-6 that
# crates/mnemo/tests/fsrs_simulate.rs compares `mnemo fsrs simulate` with,
# into $MNEMO_STATE_DIR/venv — the venv deploy/model/prepare.sh makes (this
# creates it when it is missing; prepare.sh then adds its own pins).
#
# Idempotent: does nothing when the venv already has fsrs 6.3.2.
# Environment: MNEMO_STATE_DIR (default <repo>/.mnemo), PYTHON (default python3).
# Prints the python the test should use (also what it finds by default).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
venv="$state/venv"
python="${PYTHON:-python3}"
pins=(fsrs==6.3.2 typing_extensions==4.16.0)

say() { printf '[fsrs-reference] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
has_pin() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c \
    'import sys; from importlib.metadata import version; sys.exit(version("fsrs") != "6.3.2")' 2>/dev/null
}

if has_pin; then
  say "py-fsrs 6.3.2 already in $venv"
else
  if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null || die "$python not found (set PYTHON=...)"
    say "creating venv $venv"
    mkdir -p "$state"
    "$python" -m venv "$venv" || die "python -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  say "installing ${pins[*]} from PyPI"
  "$venv/bin/python" -m pip --disable-pip-version-check --no-input -q install "${pins[@]}" \
    || die "pip install ${pins[*]} failed"
  has_pin || die "fsrs 6.3.2 is still not importable from $venv"
fi
echo "$venv/bin/python"
