"""SIGTERM on the native transport: a call in flight still gets its answer,
every client hears GOAWAY (no error), open streams end, the process exits 0,
in bounded time even when a client never reads."""

import signal
import subprocess
import sys
import time
import urllib.request

from h2client import RawClient, frame
from harness.ports import free_port
from native_server import start_native
from prometheus_client.parser import text_string_to_metric_families

from k0s_store.ops.stop_signals import FORCED_EXIT_CODE
from k0s_store.proto import rpc_pb2, rpc_pb2_grpc

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
        # Ctrl-C and SIGTERM in a burst: one clean stop (signals are awaited,
        # not handled, so none can wedge the main thread).
        for signum in (signal.SIGTERM, signal.SIGINT) * 10:
            server.proc.send_signal(signum)
        deadline = time.monotonic() + EXIT_WAIT_S
        for client in (idle, watcher):
            while client.terminated is None and time.monotonic() < deadline:
                if not client.pump(max(0.01, deadline - time.monotonic())):
                    break
            assert client.terminated is not None, "no GOAWAY before the connection closed"
            assert client.terminated.error_code == 0
        assert server.proc.wait(EXIT_WAIT_S) == 0
        assert "stopped" in server.log_tail()
        assert server.log_tail().count("received a stop signal") == 1
    finally:
        server.stop()


SNAPSHOT = "/etcdserverpb.Maintenance/Snapshot"
BOUNDED_EXIT_S = 10.0  # the 2 s grace for calls in flight, and the rest of the shutdown


def load_snapshot_data(server) -> None:
    """~2.5 MiB in the store: past a Snapshot sender's 1 MiB high-water mark."""
    kv = rpc_pb2_grpc.KVStub(server.channel())
    for batch in range(2):
        puts = [
            rpc_pb2.RequestOp(
                request_put=rpc_pb2.PutRequest(key=b"big/%d/%d" % (batch, n), value=bytes(65536))
            )
            for n in range(20)
        ]
        kv.Txn(rpc_pb2.TxnRequest(success=puts), timeout=30)


def stalled_snapshot(server) -> tuple[RawClient, int]:
    """A Snapshot call whose client never opens its window: once the sender has
    queued its high-water mark it waits for the loop to report bytes sent."""
    client = RawClient(server.endpoint, window=0)
    sid = client.start(SNAPSHOT)
    client.send(sid, frame(b""), end=True)
    time.sleep(1.0)  # the sender reaches its high-water mark and waits
    return client, sid


def handled(metrics_url: str, method: str, code: str) -> float:
    """grpc_server_handled_total of `method` with `code`, scraped from /metrics."""
    text = urllib.request.urlopen(f"{metrics_url}/metrics", timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "grpc_server_handled_total"
                and sample.labels.get("grpc_method") == method
                and sample.labels.get("grpc_code") == code
            ):
                return sample.value
    return 0.0


def test_stalled_snapshot_reset_then_sigterm(tmp_path):
    """A Snapshot whose client never reads, its sender waiting for DRAINED:
    - reset by the client: the sender stops there (Canceled), instead of
      reading the rest of the store for nobody;
    - at SIGTERM: its connection is closed after the grace, the sender lets go
      of its read transaction, the store closes and the process exits 0 in
      bounded time (it used to wait for that reader forever)."""
    metrics_url = f"http://127.0.0.1:{free_port()}"
    server = start_native(tmp_path / "server", extra_args=[f"--listen-metrics-urls={metrics_url}"])
    try:
        load_snapshot_data(server)
        client, sid = stalled_snapshot(server)
        client.reset(sid)
        deadline = time.monotonic() + 10.0
        while handled(metrics_url, "Snapshot", "Canceled") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert handled(metrics_url, "Snapshot", "Canceled") == 1
        assert handled(metrics_url, "Snapshot", "OK") == 0
        client.close()

        client, _ = stalled_snapshot(server)
        assert server.proc is not None
        began = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(BOUNDED_EXIT_S + 20) == 0
        assert time.monotonic() - began < BOUNDED_EXIT_S
        assert "stopped" in server.log_tail()
        client.close()
    finally:
        server.stop()


def test_a_shutdown_that_hangs_is_cut_short():
    """Past the deadline a shutdown that never ends (here: one that sleeps) exits
    with FORCED_EXIT_CODE and says why."""
    script = (
        "import time\n"
        "from k0s_store.ops.stop_signals import exit_unless_stopped_within\n"
        "exit_unless_stopped_within(0.5)\n"
        "time.sleep(60)\n"
    )
    began = time.monotonic()
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == FORCED_EXIT_CODE
    assert time.monotonic() - began < 20
    assert "shutdown did not finish within" in done.stderr
