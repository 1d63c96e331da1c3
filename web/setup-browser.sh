#!/usr/bin/env bash
# Installs what the browser tests drive: Debian's chromium (apt, when
# /usr/bin/chromium is missing; needs root or sudo) and the app's npm
# packages (playwright-core and axe-core among them, web/package-lock.json).
# Prints the browser's path. Idempotent. Run by deploy/local/test.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { printf '[web] %s\n' "$*" >&2; }
browser="${MNEMO_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$browser" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing Debian's chromium (browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q --no-install-recommends chromium >/dev/null
  }
fi
[ -x "$browser" ] || { say "error: $browser is missing after the install"; exit 1; }
"$here/../deploy/local/npm-ci.sh" "$here"
printf '%s\n' "$browser"
