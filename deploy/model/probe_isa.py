#!/usr/bin/env python3
"""Issue 25 probe: does a text get the same bytes on another kind of CPU?

onnxruntime's kernels (MLAS) are chosen at run time by the CPU's
instruction sets: AVX-512 and VNNI here, AVX2 on the other kind of machine
mnemo runs on, SSE elsewhere. This probe embeds the same texts, one per
call (as mnemo does with a per-call quantized model), and saves each
model's `last_hidden_state` bytes; run it once natively and once under
qemu-user pretending to be another CPU, then compare:

  P=.mnemo/venv/bin/python W=/tmp/isa
  $P deploy/model/probe_isa.py dump $W/native.npz
  qemu-x86_64 -cpu EPYC-Rome $P deploy/model/probe_isa.py dump $W/avx2.npz
  qemu-x86_64 -cpu Nehalem   $P deploy/model/probe_isa.py dump $W/sse.npz
  $P deploy/model/probe_isa.py compare $W/native.npz $W/avx2.npz $W/sse.npz

(emulated, a run takes minutes: keep --texts and --chars small).
(`apt-get install qemu-user`; QEMU 7.2 emulates up to AVX2, not AVX-512.)
Models: the fp32 export, the int8 copy (quantize_int8.py), and, made here
by the first dump in the dump's folder (the others reuse it), an int8 copy
with 7-bit weights (reduce_range), whose u8 x s7 products cannot saturate
the 16-bit sums of AVX2's VPMADDUBSW. Writes nothing in the repository.
"""
import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
from export_minilm_onnx import encode, make_tokenizer, mean_pool_l2, ort_session  # noqa: E402

repo = here.parent.parent
ap = argparse.ArgumentParser()
ap.add_argument("what", choices=["dump", "compare"])
ap.add_argument("files", nargs="+", type=Path)
ap.add_argument("--scifact", type=Path, default=repo.parent / "shared/ir/scifact")
ap.add_argument("--models", type=Path, default=repo / ".mnemo/models")
ap.add_argument("--texts", type=int, default=6)
ap.add_argument("--chars", type=int, default=600, help="each text cut at this many characters")
args = ap.parse_args()


def cpu() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    # Under qemu-user /proc/cpuinfo is the host's: ask onnxruntime's own
    # view through numpy's, which reads CPUID.
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as f  # numpy 2
        seen = [k for k in ("AVX2", "AVX512F", "AVX512_SKX", "AVX512_ICL") if f.get(k)]
    except ImportError:
        seen = sorted(flags & {"avx2", "avx512f"})
    return f"{platform.machine()} {' '.join(seen) or 'no AVX2'}"


def dump(out: Path) -> None:
    fp32 = args.models / "all-MiniLM-L6-v2"
    int8 = args.models / "all-MiniLM-L6-v2-int8"
    tok = make_tokenizer(fp32, 256)
    texts = []
    with open(args.scifact / "corpus.jsonl") as fh:
        for i, line in enumerate(fh):
            if i % 97 == 3:
                d = json.loads(line)
                texts.append((d.get("title", "") + " " + d["text"])[:args.chars])
                if len(texts) >= args.texts:
                    break
    reduced = out.parent / "int8-7bit.onnx"
    if not reduced.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        out.parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(fp32 / "model.onnx"), str(reduced), weight_type=QuantType.QInt8,
                         per_channel=True, reduce_range=True)
    arrays = {"cpu": np.array(cpu())}
    for name, path in [("fp32", fp32 / "model.onnx"), ("int8", int8 / "model.onnx"),
                       ("int8_7bit", reduced)]:
        s = ort_session(path, threads=1)
        for i, t in enumerate(texts):
            e = encode(tok, [t])
            arrays[f"{name}/{i}"] = s.run(None, e)[0][0]
            arrays[f"{name}/{i}/mask"] = e["attention_mask"][0]
    np.savez(out, **arrays)
    print(f"{out}: {len(texts)} texts, 3 models, {arrays['cpu']}")


def compare(files: list[Path]) -> None:
    runs = [dict(np.load(f)) for f in files]
    base = runs[0]
    print(f"reference: {files[0]} ({base['cpu']})")
    print("| model | other CPU | texts bit-identical | max abs diff (hidden) | min cosine (pooled) |")
    print("|---|---|---:|---:|---:|")
    for model in ["fp32", "int8", "int8_7bit"]:
        keys = sorted(k for k in base if k.startswith(model + "/") and not k.endswith("/mask"))
        for f, run in zip(files[1:], runs[1:]):
            same, worst, cmin = 0, 0.0, 1.0
            for k in keys:
                a, b = base[k], run[k]
                same += a.tobytes() == b.tobytes()
                worst = max(worst, float(np.abs(a - b).max()))
                m = base[k + "/mask"][None]
                pa, pb = mean_pool_l2(a[None], m)[0], mean_pool_l2(b[None], m)[0]
                cmin = min(cmin, float(pa @ pb))
            print(f"| {model} | {run['cpu']} | {same} of {len(keys)} | {worst:.2e} | {cmin:.6f} |")


if args.what == "dump":
    dump(args.files[0])
else:
    compare(args.files)
