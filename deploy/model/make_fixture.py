#!/usr/bin/env python3
"""Write the small reference fixture the Rust embedder test compares against.

Output: crates/mnemo-embedder/tests/fixtures/minilm_reference.json (repo
relative; override with --out). The vectors come from the pure-numpy BERT
forward pass in export_minilm_onnx.py (float64, no ONNX involved), tokenised
exactly as fastembed does (tokenizer.json of the package, truncation at
max_length, [CLS] ... [SEP]), mean-pooled over the attention mask and
L2-normalised, then rounded to 7 significant digits.

Run it with the venv made by prepare.sh:
  .mnemo/venv/bin/python deploy/model/make_fixture.py
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import export_minilm_onnx as ex  # noqa: E402

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Photosynthesis converts light energy into chemical energy.",
    "What is the capital of France?",
    "Spaced repetition helps you remember vocabulary for a long time.",
]
MAX_LENGTH = 256


def sig7(x: float) -> float:
    return float(f"{x:.7g}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path,
                    default=REPO / "crates/mnemo-embedder/tests/fixtures/minilm_reference.json")
    args = ap.parse_args()

    model_dir = ex.package_model_dir()
    cfg = ex.load_config(model_dir)
    ref = ex.NumpyBert(ex.load_weights(model_dir), cfg, np.float64)
    tok = ex.make_tokenizer(model_dir, MAX_LENGTH)

    items = []
    for s in SENTENCES:
        enc = ex.encode(tok, [s])
        ids = enc["input_ids"][0]
        vec = ref.embed(ids)
        items.append({"text": s, "num_tokens": int(len(ids)),
                      "embedding": [sig7(v) for v in vec]})

    head = {
        "model_id": ex.MODEL_ID,
        "source_package": f"{ex.DIST}=={ex.package_version()}",
        "dim": int(cfg["hidden_size"]),
        "max_length": MAX_LENGTH,
        "pooling": "mean",
        "normalization": "l2",
        "reference": "pure-numpy float64 BERT forward pass (deploy/model/export_minilm_onnx.py)",
        "rounding": "7 significant digits",
        "compare": "cosine >= 0.9999 per sentence",
        "generated_by": "deploy/model/make_fixture.py",
    }
    # one vector per line: small, diff-friendly, still plain JSON
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append('  "sentences": [')
    for i, it in enumerate(items):
        emb = ",".join(repr(v) for v in it["embedding"])
        sep = "," if i + 1 < len(items) else ""
        lines.append(f'    {{"text": {json.dumps(it["text"])}, "num_tokens": {it["num_tokens"]}, '
                     f'"embedding": [{emb}]}}{sep}')
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # must be valid JSON

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size} bytes, {len(items)} sentences)")
    if size >= 30_000:
        print("error: fixture is not < 30 KB", file=sys.stderr)
        return 1
    a, b, c = (np.array(items[i]["embedding"]) for i in range(3))
    print(f"cos(paraphrase)={a @ b:.4f} cos(unrelated)={a @ c:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
