#!/usr/bin/env python3
"""Make an int8 (dynamically quantized) copy of the prepared MiniLM ONNX model.

This is the model mnemo serves (docs/decisions/020). It reads
the fp32 model directory that export_minilm_onnx.py / prepare.sh produce and
writes OUT_DIR with the same layout:

  model.onnx                 onnxruntime.quantization.quantize_dynamic, QInt8 weights
                             in 7 bits (reduce_range), per-channel scales
  tokenizer.json ...         the tokenizer/config files, copied unchanged
  quantize-report.json       numbers of the last check
  .quantize-stamp            what the output was made from (for idempotency)

Dynamic quantization stores the MatMul weights (and the embedding tables) as
int8 and computes the activation scale at run time, per input tensor, i.e.
per BATCH. An embedding therefore depends on what else is in the batch and on
the padding length: embed one text per call when the output must be
reproducible.

Shape inference: quantize_dynamic runs ONNX shape inference itself, and the
export already carries full value_info. `quant_pre_process` was tried and
quantizes exactly the same 36 MatMuls; it only adds ORT-internal opset imports
(com.microsoft, ...) to the graph, so it is not used.

After quantizing, the model is loaded with onnxruntime (CPU, ORT_ENABLE_ALL and
ORT_DISABLE_ALL) and checked against the fp32 model: the mean-pooled,
L2-normalised embedding of every verification sentence must have cosine
>= 0.95 with the fp32 one. Only then is model.onnx moved into place.

Usage:
  python quantize_int8.py FP32_DIR OUT_DIR [--force] [--check]
    --force   quantize again even if the stamp matches
    --check   run the comparison (and print the numbers) even when up to date
Exit status: 0 ok / up to date, 1 check failed, 2 bad input.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

# Tokenisation, pooling and the sentences are shared with the fp32 exporter so
# both models are compared exactly the way fastembed runs them.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_minilm_onnx import (  # noqa: E402
    TOKENIZER_FILES, VERIFY_SENTENCES, cos, encode, make_tokenizer, mean_pool_l2, ort_session,
    sha256_file,
)

MIN_COSINE = 0.95          # int8 vs fp32, per sentence, pooled + L2-normalised
MAX_LENGTH = 256           # what fastembed uses for this model
STAMP = ".quantize-stamp"
REPORT = "quantize-report.json"
# Files of the fp32 dir that describe the fp32 export and are not copied.
NOT_COPIED = {"model.onnx", "export-report.json"}


def files_to_copy(src_dir: Path) -> list[str]:
    """The four tokenizer/config files (required) plus any other plain file."""
    missing = [n for n in TOKENIZER_FILES if not (src_dir / n).is_file()]
    if missing:
        raise SystemExit(f"error: {src_dir} lacks {', '.join(missing)} (run deploy/model/prepare.sh)")
    extra = sorted(p.name for p in src_dir.iterdir()
                   if p.is_file() and not p.name.startswith(".")
                   and p.name not in NOT_COPIED and p.name not in TOKENIZER_FILES)
    return list(TOKENIZER_FILES) + extra


def wanted_stamp(src_dir: Path) -> dict[str, str]:
    import onnxruntime as ort

    return {
        "source_sha256": sha256_file(src_dir / "model.onnx"),
        "script_sha256": sha256_file(Path(__file__).resolve()),
        "onnxruntime": ort.__version__,
        "weight_type": "QInt8",
        "per_channel": "1",
        "reduce_range": "1",
    }


def read_stamp(out_dir: Path) -> dict[str, str]:
    try:
        lines = (out_dir / STAMP).read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def up_to_date(src_dir: Path, out_dir: Path, want: dict[str, str], names: list[str]) -> bool:
    have = read_stamp(out_dir)
    if not have or any(have.get(k) != v for k, v in want.items()):
        return False
    if not (out_dir / "model.onnx").is_file() or have.get("model_onnx_sha256") != sha256_file(out_dir / "model.onnx"):
        return False
    # copied files must still be there and unchanged
    return all((out_dir / n).is_file() and (out_dir / n).read_bytes() == (src_dir / n).read_bytes()
               for n in names)


def embed(sess, tok, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One padded batch -> (pooled+L2 [n,384] float64, last_hidden_state, mask)."""
    feeds = encode(tok, texts)
    hidden = sess.run(None, feeds)[0]
    return mean_pool_l2(hidden, feeds["attention_mask"]), hidden, feeds["attention_mask"]


def alone_vs_batch(sess, tok, texts: list[str]) -> dict:
    """Each text alone vs inside one padded batch of all texts."""
    batch, hid_b, mask_b = embed(sess, tok, texts)
    identical_pooled = identical_hidden = True
    min_cos, max_abs = 1.0, 0.0
    for i, t in enumerate(texts):
        one, hid_1, _ = embed(sess, tok, [t])
        n = int(mask_b[i].sum())  # real tokens of text i
        identical_pooled &= bool(np.array_equal(one[0], batch[i]))
        identical_hidden &= bool(np.array_equal(hid_1[0, :n], hid_b[i, :n]))
        min_cos = min(min_cos, cos(one[0], batch[i]))
        max_abs = max(max_abs, float(np.abs(one[0] - batch[i]).max()))
    return {"bit_identical_pooled": identical_pooled, "bit_identical_hidden": identical_hidden,
            "min_cosine": min_cos, "max_abs_diff_pooled": max_abs}


def check(fp32_path: Path, int8_path: Path, tok) -> tuple[bool, dict]:
    texts = VERIFY_SENTENCES  # 8 sentences, 3..70 tokens
    res: dict = {"sentences": len(texts), "min_cosine_required": MIN_COSINE,
                 "fp32_bytes": fp32_path.stat().st_size, "int8_bytes": int8_path.stat().st_size}
    fp32 = ort_session(fp32_path, "all")
    ref_alone = np.stack([embed(fp32, tok, [t])[0][0] for t in texts])
    ok = True
    for level in ("all", "none"):
        q = ort_session(int8_path, level)  # raises if onnxruntime cannot load it
        # compare one text per call (how mnemo uses the int8 model)
        got = np.stack([embed(q, tok, [t])[0][0] for t in texts])
        cs = [cos(a, b) for a, b in zip(got, ref_alone)]
        res[f"cosine_vs_fp32_{level}"] = {"min": min(cs), "mean": float(np.mean(cs)), "per_sentence": cs}
        print(f"  [{'PASS' if min(cs) >= MIN_COSINE else 'FAIL'}] int8 (ort {level}) vs fp32, one text per call: "
              f"min cosine {min(cs):.6f}, mean {np.mean(cs):.6f} (>= {MIN_COSINE})")
        ok &= min(cs) >= MIN_COSINE
    # sanity: paraphrase closer than unrelated, as for the fp32 model
    q = ort_session(int8_path, "all")
    e = np.stack([embed(q, tok, [t])[0][0] for t in texts[:3]])
    para, unrel = cos(e[0], e[1]), cos(e[0], e[2])
    res["paraphrase_cosine"], res["unrelated_cosine"] = para, unrel
    print(f"  [{'PASS' if para > unrel else 'FAIL'}] int8 sanity: paraphrase {para:.4f} > unrelated {unrel:.4f}")
    ok &= para > unrel
    # batch composition: informational (int8 is expected NOT to be invariant)
    for name, sess in (("fp32", fp32), ("int8", q)):
        r = alone_vs_batch(sess, tok, texts)
        res[f"alone_vs_batch8_{name}"] = r
        print(f"  [info] {name}: alone vs padded batch of {len(texts)}: bit-identical pooled={r['bit_identical_pooled']} "
              f"hidden={r['bit_identical_hidden']}, min cosine {r['min_cosine']:.9f}, "
              f"max |diff| {r['max_abs_diff_pooled']:.3e}")
    # same text twice, one call each: must be bit-identical (deterministic replay)
    a, b = embed(q, tok, [texts[4]])[0], embed(q, tok, [texts[4]])[0]
    res["int8_repeat_bit_identical"] = bool(np.array_equal(a, b))
    print(f"  [{'PASS' if res['int8_repeat_bit_identical'] else 'FAIL'}] int8: same text, two calls, bit-identical")
    ok &= res["int8_repeat_bit_identical"]
    print(f"  [info] model.onnx size: fp32 {res['fp32_bytes']} B, int8 {res['int8_bytes']} B "
          f"({res['int8_bytes'] / res['fp32_bytes']:.3f}x)")
    return bool(ok), res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src_dir", type=Path, help="prepared fp32 model dir (has model.onnx + tokenizer files)")
    ap.add_argument("out_dir", type=Path, help="where to write the int8 model dir")
    ap.add_argument("--force", action="store_true", help="quantize again even if the stamp matches")
    ap.add_argument("--check", action="store_true", help="run the comparison even when up to date")
    args = ap.parse_args()
    src_dir, out_dir = args.src_dir.resolve(), args.out_dir.resolve()

    if not (src_dir / "model.onnx").is_file():
        print(f"error: {src_dir}/model.onnx not found (run deploy/model/prepare.sh first)", file=sys.stderr)
        return 2
    if src_dir == out_dir:
        print("error: output dir must differ from the fp32 dir", file=sys.stderr)
        return 2
    names = files_to_copy(src_dir)
    want = wanted_stamp(src_dir)
    tok = make_tokenizer(src_dir, MAX_LENGTH)

    if not args.force and up_to_date(src_dir, out_dir, want, names):
        print(f"int8 model in {out_dir} is up to date (stamp matches)")
        if args.check:
            ok, _ = check(src_dir / "model.onnx", out_dir / "model.onnx", tok)
            return 0 if ok else 1
        return 0

    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STAMP).unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".quantize-", dir=out_dir))
    try:
        tmp_onnx = tmp / "model.onnx"
        print(f"quantizing {src_dir / 'model.onnx'} (dynamic, 7-bit QInt8 per-channel weights)")
        # per_channel=True: one weight scale per output column. With the default
        # per-tensor scales the worst verification sentence ("Hi") reached only
        # cosine 0.9305 vs fp32 (mean 0.9627); per channel gives 0.984 (mean
        # 0.9925) at the same size.
        # reduce_range=True: 7-bit weights, so u8 x s7 pairs cannot saturate
        # the 16-bit sums of AVX2's VPMADDUBSW on CPUs without VNNI: the
        # integer products are exact on every x86 kind (probe_isa.py: with
        # 8-bit weights an AVX2-only EPYC's vectors drift to cosine 0.9885
        # from a VNNI machine's, with 7-bit they stay above 0.9967; the float
        # parts still differ in the last bits). SciFact vector nDCG@10 0.6739
        # (fp32 0.6743, 8-bit 0.6695): docs/decisions/020.
        # Other defaults: uint8 activations, MatMul with constant B only (the
        # 36 dense layers) and the embedding Gathers.
        # (its "consider pre-processing" warning is silenced: see the docstring)
        root = logging.getLogger()
        level, _ = root.level, root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(src_dir / "model.onnx", tmp_onnx, weight_type=QuantType.QInt8,
                             per_channel=True, reduce_range=True)
        finally:
            root.setLevel(level)
        ok, res = check(src_dir / "model.onnx", tmp_onnx, tok)
        if not ok:
            print("error: int8 check FAILED; model not installed", file=sys.stderr)
            return 1
        for n in names:
            shutil.copyfile(src_dir / n, out_dir / n)
        os.replace(tmp_onnx, out_dir / "model.onnx")
        (out_dir / REPORT).write_text(json.dumps(res, indent=2) + "\n")
        stamp = dict(want, model_onnx_sha256=sha256_file(out_dir / "model.onnx"))
        (out_dir / STAMP).write_text("".join(f"{k}={v}\n" for k, v in stamp.items()))  # written last
        print(f"wrote {out_dir / 'model.onnx'} sha256={stamp['model_onnx_sha256']}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
