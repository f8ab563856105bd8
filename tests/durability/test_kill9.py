"""Every acknowledged write survives `kill -9`, with its revision, and no
revision is reused afterwards."""

import subprocess
import sys
import time
from pathlib import Path

from harness.rpc import Client

from k0s_store.proto import rpc_pb2

WRITER = Path(__file__).with_name("writer.py")
WRITERS = 4
LOAD_SECONDS = 3.0
WRITERS_START_S = 30.0


def _acknowledged(files: list[Path]) -> dict[bytes, int]:
    acked: dict[bytes, int] = {}
    for path in files:
        for line in path.read_text().splitlines():
            key, revision = line.split()
            acked[key.encode()] = int(revision)
    return acked


def test_acknowledged_writes_survive_kill9(subject_server, tmp_path):
    files = [tmp_path / f"writer-{index}.log" for index in range(WRITERS)]
    writers = [
        subprocess.Popen([sys.executable, str(WRITER), subject_server.endpoint, f"w{i}", str(path)])
        for i, path in enumerate(files)
    ]
    started = time.monotonic()  # writers start slowly on a loaded machine: wait for them
    while not all(path.exists() and path.stat().st_size for path in files):
        assert time.monotonic() - started < WRITERS_START_S, "the writers never wrote"
        time.sleep(0.05)
    time.sleep(LOAD_SECONDS)
    subject_server.kill9()
    for writer in writers:
        writer.wait(30)
    acked = _acknowledged(files)
    assert len(acked) > 50, f"only {len(acked)} writes acknowledged in {LOAD_SECONDS}s"
    revisions = sorted(acked.values())
    assert len(set(revisions)) == len(revisions), "two acknowledged puts share a revision"

    subject_server.start().wait_ready()
    client = Client(subject_server.channel())
    try:
        stored = client.call("KV", "Range", rpc_pb2.RangeRequest(key=b"w", range_end=b"x"))
        found = {kv.key: kv.mod_revision for kv in stored.kvs}
        lost = {key: rev for key, rev in acked.items() if found.get(key) != rev}
        assert not lost, (
            f"{len(lost)} acknowledged writes lost or changed, e.g. {sorted(lost.items())[:5]}"
        )
        after = client.call("KV", "Put", rpc_pb2.PutRequest(key=b"after", value=b"1"))
        assert after.header.revision > max(revisions)
        assert after.header.revision == stored.header.revision + 1
    finally:
        client.close()
