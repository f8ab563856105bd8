"""etcd's Maintenance.Snapshot stream: the file in chunks, then its sha256.

Message sequence (etcdserver/api/v3rpc/maintenance.go): blobs of CHUNK_SIZE
bytes (the last one shorter), each with remaining_bytes = bytes of the file
still to come after it; then one message with remaining_bytes 0 whose blob
is the sha256 of the whole file, which `etcdctl snapshot save` appends.
"""

import hashlib
from collections.abc import Iterator

from k0s_store.snapshot.bbolt_writer import BoltWriter

CHUNK_SIZE = 32 * 1024


def snapshot_chunks(writer: BoltWriter) -> Iterator[tuple[int, bytes]]:
    """(remaining_bytes, blob) messages of `writer`'s file, the sha256 last."""
    total, sent = writer.size, 0
    digest = hashlib.sha256()
    pieces: list[bytes] = []
    held = 0
    for page in writer.pages():
        pieces.append(page)
        held += len(page)
        if held < CHUNK_SIZE:
            continue
        data = b"".join(pieces)
        view = memoryview(data)
        whole = held - held % CHUNK_SIZE
        for start in range(0, whole, CHUNK_SIZE):
            blob = bytes(view[start : start + CHUNK_SIZE])
            digest.update(blob)
            sent += CHUNK_SIZE
            yield total - sent, blob
        pieces = [data[whole:]] if whole < held else []
        held -= whole
    if held:
        blob = b"".join(pieces)
        digest.update(blob)
        sent += held
        yield total - sent, blob
    if sent != total:
        raise RuntimeError(f"snapshot wrote {sent} bytes, planned {total}")
    yield 0, digest.digest()
