#!/usr/bin/env bash
# Builds the web app into web/dist, which the mnemo binary embeds
# (crates/mnemo-api/src/web.rs): the locked npm packages (once per
# lockfile), clients generated from protos/ (every time, so they follow the
# contract), a type check, then Vite. Build mnemo after this; a debug build
# reads web/dist as it is at run time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/../deploy/local/npm-ci.sh" "$here"
cd "$here"
rm -rf src/gen
npm run --silent generate
npm run --silent check
npm run --silent build -- --logLevel warn
printf '[web] built into %s/dist\n' "$here" >&2
