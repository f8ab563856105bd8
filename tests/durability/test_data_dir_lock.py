"""Two servers on one data directory: the second waits for the first to exit
(as etcd does), instead of serving beside it with its own revision counter,
which hands out the same revisions twice and duplicates keys in ranges."""

import socket
import time

from harness.processes import ServerProcess
from harness.rpc import Client

from k0s_store.proto import rpc_pb2

WAIT_WARNING_S = 30.0


def _put(server: ServerProcess, key: bytes, value: bytes) -> int:
    client = Client(server.channel())
    try:
        return client.call("KV", "Put", rpc_pb2.PutRequest(key=key, value=value)).header.revision
    finally:
        client.close()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_second_server_waits_for_the_first(servers, tmp_path):
    first = servers("ours").wait_ready()
    assert _put(first, b"k", b"first") == 2
    second = ServerProcess("ours", tmp_path / "second")
    second.data_dir = first.data_dir
    second.start()
    try:
        deadline = time.monotonic() + WAIT_WARNING_S
        while "waiting for it to exit" not in second.log_tail():
            assert second.proc.poll() is None, f"second server exited:\n{second.log_tail()}"
            assert time.monotonic() < deadline, f"no waiting warning:\n{second.log_tail()}"
            time.sleep(0.05)
        assert not _listening(second.port), "the second server serves beside the first"
        assert _put(first, b"k", b"again") == 3

        first.stop()
        second.wait_ready()
        assert _put(second, b"k2", b"second") == 4, "a revision was handed out twice"
        client = Client(second.channel())
        try:
            found = client.call("KV", "Range", rpc_pb2.RangeRequest(key=b"k", range_end=b"l"))
        finally:
            client.close()
        assert [(kv.key, kv.value, kv.mod_revision) for kv in found.kvs] == [
            (b"k", b"again", 3),
            (b"k2", b"second", 4),
        ]
    finally:
        second.stop()
