#!/usr/bin/env python3
"""mnemo against the plain Python pipeline, end to end, interleaved.

Runs `mnemo-bench pipeline DIR --no-alone --json` once per mnemo model
given (--mnemo NAME=MODEL_DIR, any number) and the Python pipeline
(pipeline.py in the venv setup.sh makes) one after the other, ROUNDS times,
so a noisy machine slows every contender alike; then prints each run and a
table of medians with the speed-up over Python. Needs only the standard
library: run it with any python3.

  crates/mnemo-bench/baseline/compare.py ../shared/corpus/pdf --rounds 2 \\
      --mnemo fp32=.mnemo/models/all-MiniLM-L6-v2 \\
      --mnemo int8=.mnemo/models/all-MiniLM-L6-v2-int8

Environment: what `mnemo-bench` needs (.mnemo/services.env and model.env
sourced), MNEMO_BENCH (default: target/release/mnemo-bench, or
$CARGO_TARGET_DIR/release/mnemo-bench), MNEMO_BASELINE_PYTHON (default:
what setup.sh prints).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def cpu_flags() -> str:
    """The CPU's model and the SIMD flags the model's kernels choose by."""
    model, flags = platform.processor() or "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("?", ""):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8"]
    return f"{model}; {os.cpu_count()} cores; " + " ".join(f for f in wanted if f in flags)


def bench_binary() -> str:
    if os.environ.get("MNEMO_BENCH"):
        return os.environ["MNEMO_BENCH"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "release" / "mnemo-bench")


def run_json(cmd: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}")
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise SystemExit(f"{' '.join(cmd)} printed no JSON")
    return json.loads(lines[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--mnemo", action="append", default=[], metavar="NAME=MODEL_DIR",
                    help="a mnemo contender: its name and the model it serves")
    args = ap.parse_args()
    mnemo = []
    for spec in args.mnemo or [f"default={os.environ.get('MNEMO_MODEL_DIR', '')}"]:
        name, _, model_dir = spec.partition("=")
        if not model_dir or not Path(model_dir, "model.onnx").is_file():
            raise SystemExit(f"--mnemo {spec}: no model.onnx in {model_dir!r}")
        mnemo.append((name, model_dir))
    python = os.environ.get("MNEMO_BASELINE_PYTHON") or subprocess.run(
        [str(HERE / "setup.sh")], stdout=subprocess.PIPE, text=True, check=True).stdout.strip()

    print(f"# {args.dir} · {args.rounds} rounds · {cpu_flags()}")
    runs: dict[str, list[dict]] = {name: [] for name, _ in mnemo}
    runs["python"] = []
    for r in range(1, args.rounds + 1):
        for name, model_dir in mnemo:
            env = dict(os.environ, MNEMO_MODEL_DIR=model_dir)
            out = run_json([bench_binary(), "pipeline", str(args.dir), "--no-alone", "--json"], env)
            e2e = out["end_to_end"]
            runs[name].append({"seconds": e2e["seconds"], "indexed": e2e["indexed"],
                               "failed": len(e2e["failed"]), "chunks": e2e["chunks"],
                               "tokens": e2e["tokens"], "largest": e2e["max_chunk_tokens"]})
            print(f"round {r} mnemo {name}: {e2e['seconds']:.1f} s", flush=True)
        out = run_json([python, str(HERE / "pipeline.py"), str(args.dir), "--json"], dict(os.environ))
        runs["python"].append({"seconds": out["seconds"], "indexed": out["indexed"],
                               "failed": out["failed"], "chunks": out["chunks"],
                               "tokens": out["tokens"], "largest": out["largest_chunk_tokens"]})
        print(f"round {r} python: {out['seconds']:.1f} s", flush=True)

    py = statistics.median(x["seconds"] for x in runs["python"])
    print()
    print("| pipeline | runs (s) | median | × Python | indexed / failed | chunks | tokens (largest) |")
    print("|---|---|---:|---:|---|---:|---|")
    for name, rs in runs.items():
        med = statistics.median(x["seconds"] for x in rs)
        last = rs[-1]
        label = "Python (pypdf, LangChain, sentence-transformers)" if name == "python" else f"mnemo, {name}"
        times = ", ".join(f"{x['seconds']:.1f}" for x in rs)
        print(f"| {label} | {times} | {med:.1f} | "
              f"{py / med:.2f} | {last['indexed']} / {last['failed']} | {last['chunks']} | "
              f"{last['tokens']} ({last['largest']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
