"""The native server's memory under long-lived connections (issue 6's soak
growth): many calls on one connection leave nothing behind once they end.

nghttp2 keeps every closed stream for RFC 7540's priority tree, up to
SETTINGS_MAX_CONCURRENT_STREAMS of them per connection, unless told not to;
with our limit of a million that was ~260 bytes per call, forever, on every
connection a client keeps open (3 load clients grew the soak's RSS by
~8 MiB a minute). The heap is measured as RssAnon: C allocations included.
"""

import time

from h2client import RawClient, frame
from native_server import anon_rss_bytes

from k0s_store.proto import rpc_pb2

RANGE = "/etcdserverpb.KV/Range"
BATCH = 100  # calls in flight at once on the connection
CALLS = 12_000  # at the old ~270 bytes a call: ~3.1 MiB
ALLOWED_GROWTH = 1024 * 1024 + 512 * 1024  # allocator noise, without a per-call cost


def run_calls(client: RawClient, calls: int) -> None:
    """`calls` one-key Ranges on `client`'s connection, BATCH at a time."""
    body = frame(rpc_pb2.RangeRequest(key=b"k").SerializeToString())
    for _ in range(calls // BATCH):
        sids = []
        for _ in range(BATCH):
            sid = client.start(RANGE)
            client.h2.send_data(sid, body, end_stream=True)
            sids.append(sid)
        client.flush()
        for sid in sids:
            response = client.wait(sid)
            assert response.status == 0, response
            del client.responses[sid]


def test_calls_on_one_connection_leave_no_memory(native_server):
    client = RawClient(native_server.endpoint)
    try:
        run_calls(client, 2_000)  # warm-up: worker threads, caches, allocator arenas
        before = anon_rss_bytes(native_server)
        began = time.monotonic()
        run_calls(client, CALLS)
        grown = anon_rss_bytes(native_server) - before
        elapsed = time.monotonic() - began
    finally:
        client.close()
    assert grown < ALLOWED_GROWTH, (
        f"server heap grew {grown} bytes over {CALLS} calls on one connection "
        f"({grown / CALLS:.0f} bytes a call, {elapsed:.1f}s)"
    )


PUT = "/etcdserverpb.KV/Put"
BIG_KEYS = 40  # x 4 KiB values: a 160 KiB LIST, sent from its bytes object (no copy)
BIG_LISTS = 400  # ~64 MiB of bodies if the loop never gave them back


def test_big_responses_are_released(native_server):
    """A body big enough to be sent from its bytes object goes back to Python
    (and is freed) once sent: without that, 400 LISTs kept ~64 MiB."""
    client = RawClient(native_server.endpoint)
    try:
        for i in range(BIG_KEYS):
            put = rpc_pb2.PutRequest(key=b"big/%02d" % i, value=b"v" * 4096)
            assert client.call(PUT, frame(put.SerializeToString())).status == 0
        request = frame(rpc_pb2.RangeRequest(key=b"big/", range_end=b"big0").SerializeToString())

        def lists(count: int) -> None:
            for _ in range(count):
                response = client.call(RANGE, request)
                assert response.status == 0, response
                kvs = rpc_pb2.RangeResponse.FromString(response.messages()[0]).kvs
                assert len(kvs) == BIG_KEYS

        lists(50)  # warm-up
        before = anon_rss_bytes(native_server)
        lists(BIG_LISTS)
        grown = anon_rss_bytes(native_server) - before
    finally:
        client.close()
    assert grown < 8 * 1024 * 1024, f"server heap grew {grown} bytes over {BIG_LISTS} big LISTs"
