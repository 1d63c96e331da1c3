#!/usr/bin/env bash
# Makes the Python example's own venv ($MNEMO_STATE_DIR/venv-examples,
# default <repo>/.mnemo/venv-examples) with examples/python/requirements.txt
# from PyPI: grpcio and grpcio-tools, which generates the stubs from protos/
# (deploy/local/pip-venv.sh does the work, once per requirements file).
# Prints the python to run the example with.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
exec "$repo/deploy/local/pip-venv.sh" examples "$state/venv-examples" \
  "$here/requirements.txt" 'import grpc, grpc_tools'
