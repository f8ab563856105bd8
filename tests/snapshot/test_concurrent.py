"""A snapshot taken while writes go on holds exactly one revision of the store."""

import threading
import time

from harness.rpc import Client
from snapshot_history import call

from k0s_store.core import codec, crc
from k0s_store.proto import rpc_pb2 as pb
from k0s_store.snapshot.snapshot_file import open_snapshot
from k0s_store.snapshot.stream import CHUNK_SIZE

PREFILL = 150  # 3 MB: the stream lasts long enough for writes to interleave
MAX_WRITES = 5000
MAX_WRITE_SECONDS = 30.0


def test_snapshot_under_concurrent_writes_is_one_revision(servers, tmp_path):
    server = servers("ours").wait_ready()
    client = Client(server.channel())
    for i in range(PREFILL):
        call(client, "KV", "Put", pb.PutRequest(key=b"/fill/%05d" % i, value=b"f" * 20_000))
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        deadline = time.monotonic() + MAX_WRITE_SECONDS
        while not stop.is_set() and len(written) < MAX_WRITES and time.monotonic() < deadline:
            response = call(
                client, "KV", "Put", pb.PutRequest(key=b"/hot/%d" % (len(written) % 50), value=b"v")
            )
            written.append(response.header.revision)

    writer = threading.Thread(target=write)
    writer.start()
    while len(written) < 20:
        time.sleep(0.01)
    path = tmp_path / "live.db"
    messages = []
    with open(path, "wb") as out:
        for response in client.stubs["Maintenance"].Snapshot(pb.SnapshotRequest(), timeout=60):
            messages.append((response.remaining_bytes, len(response.blob)))
            out.write(response.blob)
    time.sleep(0.2)
    stop.set()
    writer.join()

    # etcd's stream shape: 32 KiB blobs counting down, then the 32-byte sha256.
    assert messages[-1] == (0, 32)
    assert all(size == CHUNK_SIZE for _, size in messages[:-2])
    total = sum(size for _, size in messages[:-1])
    assert [remaining for remaining, _ in messages[:-1]] == [
        total - sum(size for _, size in messages[: i + 1]) for i in range(len(messages) - 1)
    ]

    with open_snapshot(path) as bolt:
        revisions = [codec.parse_rev_key(key)[0] for key, _ in bolt.items(b"key")]
        checksum = crc.crc32c(b"key")
        for key, value in bolt.items(b"key"):
            checksum = crc.crc32c(value, crc.crc32c(key, checksum))
    snapshot_rev = revisions[-1]
    assert revisions == list(range(2, snapshot_rev + 1)), (
        "every revision up to one point, none after"
    )
    assert written[0] < snapshot_rev < written[-1], "writes went on before and after the snapshot"
    at_rev = call(client, "Maintenance", "HashKV", pb.HashKVRequest(revision=snapshot_rev))
    assert checksum == at_rev.hash
    client.close()


def test_an_abandoned_snapshot_releases_its_read_transaction(servers):
    """A client that goes away mid-stream must not leave the read transaction
    open: defragmentation waits for every reader, so it would hang."""
    server = servers("ours").wait_ready()
    client = Client(server.channel())
    for i in range(40):
        call(client, "KV", "Put", pb.PutRequest(key=b"/fill/%02d" % i, value=b"f" * 20_000))
    stream = client.stubs["Maintenance"].Snapshot(pb.SnapshotRequest(), timeout=60)
    first = next(stream)
    assert first.remaining_bytes > 0
    stream.cancel()
    call(client, "Maintenance", "Defragment", pb.DefragmentRequest())
    call(client, "KV", "Put", pb.PutRequest(key=b"/after", value=b"1"))
    client.close()
