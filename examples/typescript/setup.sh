#!/usr/bin/env bash
# Installs the TypeScript example's packages from the npm registry (exact
# versions, package-lock.json; once per lockfile, deploy/local/npm-ci.sh)
# and generates its clients from protos/ (`npm run generate`: protoc-gen-es
# through buf, into gen/) every time, so they follow the contract.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/../../deploy/local/npm-ci.sh" "$here"
cd "$here"
rm -rf gen
npm run --silent generate
printf '[examples/typescript] clients generated into %s/gen\n' "$here" >&2
