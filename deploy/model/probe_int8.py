#!/usr/bin/env python3
"""Issue 25 probe: is an int8 MiniLM deterministic, how close to fp32, how fast?

Measures, on 64 SciFact corpus texts (every 25th from the 8th, cut at 1,500
characters; none used for calibration):
  - fp32 and the dynamic int8 copy (quantize_int8.py): cosine to fp32 of the
    pooled, normalised vectors; whether a text embedded alone equals the same
    text in a batch (dynamic quantization scales per batch: it does not);
    whether one text per call is repeatable; tokens/s batched and one per call;
  - with --static: a static int8 copy made here (quantize_static, QOperator,
    uint8 activations, percentile 99.99 calibration on 60 other corpus texts,
    per-channel int8 weights), the same numbers.

Usage (the venv prepare.sh makes):
  .mnemo/venv/bin/python deploy/model/probe_int8.py [--static] [--scifact ../shared/ir/scifact]
Writes nothing in the repository (the static copy goes to a temporary folder).
"""
import argparse, json, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
from export_minilm_onnx import make_tokenizer, encode, mean_pool_l2, ort_session  # noqa: E402

repo = here.parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("--static", action="store_true")
ap.add_argument("--scifact", type=Path, default=repo.parent / "shared/ir/scifact")
ap.add_argument("--models", type=Path, default=repo / ".mnemo/models")
args = ap.parse_args()

fp32 = args.models / "all-MiniLM-L6-v2"
tok = make_tokenizer(fp32, 256)

def corpus(offset, n):
    out = []
    with open(args.scifact / "corpus.jsonl") as fh:
        for i, line in enumerate(fh):
            if i % 25 == offset:
                d = json.loads(line)
                out.append((d.get("title", "") + " " + d["text"])[:1500])
                if len(out) >= n:
                    break
    return out

held = corpus(7, 64)
enc_all = encode(tok, held)
tokens = int(enc_all["attention_mask"].sum())

def emb(s, texts):
    e = encode(tok, texts)
    return mean_pool_l2(s.run(None, e)[0], e["attention_mask"])

def report(name, path, ref):
    s = ort_session(path)
    batched = emb(s, held)
    alone = np.vstack([emb(s, [t]) for t in held])
    again = np.vstack([emb(s, [t]) for t in held])
    t0 = time.time(); s.run(None, enc_all); batch_rate = tokens / (time.time() - t0)
    t0 = time.time()
    for t in held:
        s.run(None, encode(tok, [t]))
    one_rate = tokens / (time.time() - t0)
    c = (batched * ref).sum(1) if ref is not None else np.ones(len(held))
    print(f"{name:12} cos to fp32 min {c.min():.4f} mean {c.mean():.4f} | alone vs batch max |diff| "
          f"{np.abs(alone - batched).max():.1e} | one per call twice {np.abs(alone - again).max():.1e} | "
          f"tok/s batched {batch_rate:.0f}, one per call {one_rate:.0f}")
    return batched

ref = report("fp32", fp32 / "model.onnx", None)
report("int8 dynamic", args.models / "all-MiniLM-L6-v2-int8" / "model.onnx", ref)
if args.static:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    calib = corpus(0, 60)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            t = next(self.it, None)
            if t is None:
                return None
            e = encode(tok, [t]); n = e["input_ids"].shape[1]
            return {k: np.pad(v, ((0, 0), (0, 256 - n))) for k, v in e.items()}

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        quantize_static(str(fp32 / "model.onnx"), str(out), Reader(), quant_format=QuantFormat.QOperator,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.Percentile, op_types_to_quantize=["MatMul"],
                        extra_options={"CalibPercentile": 99.99})
        report("int8 static", out, ref)
