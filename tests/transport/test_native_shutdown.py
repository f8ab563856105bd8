"""SIGTERM on the native transport: a call in flight still gets its answer,
every client hears GOAWAY (no error), open streams end, the process exits 0."""

import signal
import time

from h2client import RawClient, frame
from native_server import start_native

from k0s_store.proto import rpc_pb2

WATCH = "/etcdserverpb.Watch/Watch"
EXIT_WAIT_S = 30.0


def test_sigterm_goaway_then_exit_zero(tmp_path):
    server = start_native(tmp_path / "server")
    try:
        watcher = RawClient(server.endpoint)
        watch = watcher.start(WATCH)
        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"k"))
        watcher.send(watch, frame(create.SerializeToString()))
        watcher.wait(watch, messages=1)
        idle = RawClient(server.endpoint)
        idle.pump()  # the server's SETTINGS: accepted (not still in the listen backlog)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + EXIT_WAIT_S
        for client in (idle, watcher):
            while client.terminated is None and time.monotonic() < deadline:
                if not client.pump(max(0.01, deadline - time.monotonic())):
                    break
            assert client.terminated is not None, "no GOAWAY before the connection closed"
            assert client.terminated.error_code == 0
        assert server.proc.wait(EXIT_WAIT_S) == 0
        assert "stopped" in server.log_tail()
    finally:
        server.stop()
