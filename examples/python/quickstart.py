#!/usr/bin/env python3
"""mnemo from Python: upload a file, watch it become searchable, search it.

    python quickstart.py --server 127.0.0.1:50051 --token-file TOKEN FILE "QUERY"

Prints one JSON object per line (the upload, each progress update, each
hit) and exits 0 when the file was indexed, 1 when it failed (the failure's
stage and code say where and why), 2 on a refused call.

The gRPC stubs are generated from the repository's protos/ at start
(grpc_tools.protoc into a temporary folder), so this example never drifts
from the contract. The test suite runs it against a real server
(tests/e2e/examples.rs); docs/api.md explains each step.
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

PROTOS = pathlib.Path(__file__).resolve().parents[2] / "protos"
# The server takes messages of at most 4 MiB; 256 KiB keeps memory small
# on both sides.
CHUNK = 256 * 1024
# Statuses after which watching again from the last sequence is the fix.
RESUMABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED}


def load_stubs():
    """Generates mnemo's Python stubs from protos/ and makes them importable."""
    out = tempfile.mkdtemp(prefix="mnemo-stubs-")
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTOS)) for p in sorted(PROTOS.rglob("*.proto"))]
    rc = protoc.main(
        ["protoc", f"-I{PROTOS}", f"-I{well_known}",
         f"--python_out={out}", f"--grpc_python_out={out}", *files]
    )
    if rc != 0:
        sys.exit(f"protoc failed on {PROTOS}")
    sys.path.insert(0, out)


def emit(**fields):
    print(json.dumps(fields), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="127.0.0.1:50051")
    ap.add_argument("--token-file", required=True,
                    help="a file holding the bearer token (mnemo token issue)")
    ap.add_argument("--topic", default="")
    ap.add_argument("file", type=pathlib.Path)
    ap.add_argument("query")
    args = ap.parse_args()

    load_stubs()
    from mnemo.v1 import documents_pb2 as documents
    from mnemo.v1 import documents_pb2_grpc as documents_grpc
    from mnemo.v1 import progress_pb2 as progress
    from mnemo.v1 import progress_pb2_grpc as progress_grpc
    from mnemo.v1 import search_pb2 as search
    from mnemo.v1 import search_pb2_grpc as search_grpc

    # Every call carries the token as `authorization: Bearer <JWT>`.
    token = pathlib.Path(args.token_file).read_text().strip()
    auth = [("authorization", f"Bearer {token}")]
    channel = grpc.insecure_channel(args.server)

    try:
        # 1. Upload: the metadata first, then the bytes in chunks.
        def parts():
            yield documents.UploadRequest(
                metadata=documents.UploadMetadata(filename=args.file.name, topic=args.topic))
            with args.file.open("rb") as f:
                while chunk := f.read(CHUNK):
                    yield documents.UploadRequest(chunk=chunk)

        up = documents_grpc.DocumentServiceStub(channel).Upload(parts(), metadata=auth)
        emit(event="uploaded", document_id=up.document_id, sequence=up.sequence,
             deduplicated=up.deduplicated)

        # 2. Watch until the document is terminal. A broken stream is
        # resumed from the last sequence seen: nothing missed or repeated.
        watcher = progress_grpc.ProgressServiceStub(channel)
        last, final, attempts = 0, None, 0
        while final is None:
            attempts += 1
            if attempts > 10:
                emit(event="refused", code="UNAVAILABLE", reason="the progress stream kept breaking")
                return 2
            request = progress.WatchRequest(document_id=up.document_id, from_sequence=last)
            try:
                for u in watcher.Watch(request, metadata=auth):
                    last = u.sequence
                    emit(event="progress", stage=documents.Stage.Name(u.stage),
                         fraction=u.fraction, message=u.message, sequence=u.sequence)
                    if u.terminal:
                        final = u
                        break
            except grpc.RpcError as e:
                if e.code() not in RESUMABLE:
                    raise
                time.sleep(1)  # the API is restarting, or we fell behind

        if final.stage != documents.STAGE_INDEXED:
            emit(event="failed", stage=documents.Stage.Name(final.failed_stage),
                 code=documents.FailureCode.Name(final.failure_code), message=final.message)
            return 1

        # 3. Search, reading our own write: wait until the index has the
        # sequence of the update that said `indexed`.
        found = search_grpc.SearchServiceStub(channel).Search(
            search.SearchRequest(query=args.query, k=3, min_sequence=final.sequence),
            metadata=auth)
        for hit in found.hits:
            emit(event="hit", title=hit.title, pages=[hit.page_start, hit.page_end],
                 score=round(hit.score, 4), snippet=hit.snippet)
        return 0
    except grpc.RpcError as e:
        # Every refusal carries a code and a reason written for people.
        emit(event="refused", code=e.code().name, reason=e.details())
        return 2


if __name__ == "__main__":
    sys.exit(main())
