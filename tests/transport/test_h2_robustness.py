"""The native transport under HTTP/2 and gRPC that no well-behaved client
sends, driven by a raw `h2` client: each bad call gets grpc-go's status (or
its connection is dropped), the server keeps serving everyone else, and it
holds no more descriptors afterwards than before."""

import socket
import time

import h2.connection
import h2.errors
import pytest
from h2client import RawClient, frame
from native_server import anon_rss_bytes, open_fds

from k0s_store.api.settings import Settings
from k0s_store.proto import rpc_pb2

RANGE = "/etcdserverpb.KV/Range"
PUT = "/etcdserverpb.KV/Put"
WATCH = "/etcdserverpb.Watch/Watch"
KEEPALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"
MAX_RECV = Settings().max_message_bytes
SETTLE_S = 5.0
WIDE_WINDOW = 1 << 24  # a stream and connection window no response here fills


def range_request(key: bytes = b"k") -> bytes:
    return frame(rpc_pb2.RangeRequest(key=key).SerializeToString())


def put_request(key: bytes, value: bytes) -> bytes:
    return frame(rpc_pb2.PutRequest(key=key, value=value).SerializeToString())


def assert_serving(server) -> None:
    """A fresh connection still gets a correct answer."""
    client = RawClient(server.endpoint)
    try:
        response = client.call(RANGE, range_request())
        assert response.status == 0, response
        assert rpc_pb2.RangeResponse.FromString(response.messages()[0]).header.revision >= 1
    finally:
        client.close()


def settled_fds(server) -> int:
    """The server's descriptor count once it has not changed for a moment
    (connections of earlier tests may still be closing)."""
    count, deadline = open_fds(server), time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = open_fds(server)
        if now == count:
            break
        count = now
    return count


def wait_fds(server, baseline: int) -> int:
    """The server's descriptor count once it is back to `baseline` (or after SETTLE_S)."""
    deadline = time.monotonic() + SETTLE_S
    while open_fds(server) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    return open_fds(server)


def preface() -> bytes:
    """A client connection preface with its SETTINGS frame."""
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    return conn.data_to_send()


def test_unary_calls_and_headers(native_server):
    client = RawClient(native_server.endpoint)
    put = client.call(PUT, put_request(b"raw", b"value"))
    assert put.status == 0 and put.headers[":status"] == "200"
    assert put.headers["content-type"] == "application/grpc"
    got = rpc_pb2.RangeResponse.FromString(client.call(RANGE, range_request(b"raw")).messages()[0])
    assert [(kv.key, kv.value) for kv in got.kvs] == [(b"raw", b"value")]
    client.close()


def test_grpc_timeout_on_unary_calls(native_server):
    """A call whose grpc-timeout has run out before it starts is not run: grpc-go's
    DEADLINE_EXCEEDED "context deadline exceeded" (a put is not applied); a
    deadline in the future changes nothing."""
    client = RawClient(native_server.endpoint)
    expired = [("grpc-timeout", "1n")]
    put = client.call(PUT, put_request(b"late", b"value"), headers=expired)
    assert (put.status, put.message) == (4, "context deadline exceeded")
    got = client.call(RANGE, range_request(b"late"), headers=expired)
    assert (got.status, got.message) == (4, "context deadline exceeded")
    future = [("grpc-timeout", "30S")]
    assert client.call(PUT, put_request(b"on-time", b"v"), headers=future).status == 0
    got = client.call(RANGE, range_request(b"late"), headers=future)
    assert got.status == 0
    assert not rpc_pb2.RangeResponse.FromString(got.messages()[0]).kvs, "the late put was applied"
    client.close()


# grpc-timeout values grpc-go refuses, accepts, and accepts as already run out.
REFUSED_TIMEOUTS = ["abc", "1", "1234567890S", "10x", "-S"]
ACCEPTED_TIMEOUTS = ["+5S", "00000001S", "5S"]
EXPIRED_TIMEOUTS = ["-5S", "0S"]


def _timeout_answers(endpoint: str, values: list[str]) -> list[tuple]:
    answers = []
    for value in values:
        client = RawClient(endpoint)
        got = client.call(RANGE, range_request(), headers=[("grpc-timeout", value)])
        answers.append((value, got.status, got.message, got.reset))
        client.close()
    return answers


@pytest.mark.etcd
def test_grpc_timeout_values_beside_etcd(native_server, servers):
    """grpc-timeout as etcd's grpc-go reads it: one it cannot parse resets the
    stream (PROTOCOL_ERROR), a signed amount is Go's ParseInt's, a negative or
    zero one has already run out."""
    etcd = servers("etcd").wait_ready()
    checked = REFUSED_TIMEOUTS + ACCEPTED_TIMEOUTS
    ours = _timeout_answers(native_server.endpoint, checked)
    assert ours == _timeout_answers(etcd.endpoint, checked)
    assert {reset for _, _, _, reset in ours[: len(REFUSED_TIMEOUTS)]} == {
        h2.errors.ErrorCodes.PROTOCOL_ERROR
    }
    # etcd's own answer to these races between grpc-go and its handler: seen
    # DEADLINE_EXCEEDED, UNKNOWN with the same message, and even OK. Ours
    # never starts such a call.
    for _, status, message, _ in _timeout_answers(native_server.endpoint, EXPIRED_TIMEOUTS):
        assert (status, message) == (4, "context deadline exceeded")
    for _, status, message, _ in _timeout_answers(etcd.endpoint, EXPIRED_TIMEOUTS):
        assert status == 0 or message == "context deadline exceeded"
    assert_serving(native_server)


def _stream_deadline_ends(endpoint: str, timeout: str) -> list[tuple]:
    """(method, status, message, seconds to the end) of a Watch and a
    LeaseKeepAlive opened with `timeout` and one request, never half-closed."""
    first = {
        WATCH: rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"a")),
        KEEPALIVE: rpc_pb2.LeaseKeepAliveRequest(ID=1),
    }
    ends = []
    for path, request in first.items():
        client = RawClient(endpoint)
        started = time.monotonic()
        sid = client.start(path, headers=[("grpc-timeout", timeout)])
        client.send(sid, frame(request.SerializeToString()))
        got = client.wait(sid, timeout=10)
        ends.append((path, got.status, got.message, time.monotonic() - started))
        client.close()
    return ends


@pytest.mark.etcd
def test_grpc_timeout_ends_streams_beside_etcd(native_server, servers):
    """A Watch or LeaseKeepAlive with a grpc-timeout ends when it runs out, with
    Go's "context deadline exceeded": etcd's status races between
    DEADLINE_EXCEEDED and UNKNOWN, ours is DEADLINE_EXCEEDED; one that has
    already run out ends at once."""
    etcd = servers("etcd").wait_ready()
    for path, status, message, seconds in _stream_deadline_ends(etcd.endpoint, "700m"):
        assert status in (2, 4) and message == "context deadline exceeded", path
        assert 0.6 < seconds < 3, (path, seconds)
    for path, status, message, seconds in _stream_deadline_ends(native_server.endpoint, "700m"):
        assert (status, message) == (4, "context deadline exceeded"), path
        assert 0.6 < seconds < 3, (path, seconds)
    for path, status, message, seconds in _stream_deadline_ends(native_server.endpoint, "1n"):
        assert (status, message) == (4, "context deadline exceeded"), path
        assert seconds < 2, (path, seconds)
    assert_serving(native_server)


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "message"),
    [
        ("/foo.Bar/Baz", [], range_request(), 12, "unknown service foo.Bar"),
        (
            "/etcdserverpb.KV/Nope",
            [],
            range_request(),
            12,
            "unknown method Nope for service etcdserverpb.KV",
        ),
        (
            RANGE,
            [],
            frame(b"\x0a\x01k", compressed=1),
            13,
            "grpc: compressed flag set with identity or empty encoding",
        ),
        (RANGE, [], frame(b"", compressed=2), 13, "grpc: received unexpected payload format 2"),
        (
            RANGE,
            [],
            frame(b"", length=MAX_RECV + 1),
            8,
            f"grpc: received message larger than max ({MAX_RECV + 1} vs. {MAX_RECV})",
        ),
        (
            RANGE,
            [("grpc-encoding", "gzip")],
            range_request(),
            12,
            'grpc: Decompressor is not installed for grpc-encoding "gzip"',
        ),
        (
            RANGE,
            [("content-type", "text/plain")],
            range_request(),
            13,
            'transport: received unexpected content-type "text/plain"',
        ),
        (RANGE, [], b"", 2, "EOF"),
        (RANGE, [], frame(b"abc", length=10), 13, "unexpected EOF"),
        (RANGE, [], b"\x00\x00", 13, "unexpected EOF"),
        (PUT, [], frame(b"\xff\xff\xff"), 13, None),
    ],
    ids=[
        "unknown-service",
        "unknown-method",
        "compressed-flag",
        "bad-payload-format",
        "over-limit-length",
        "gzip-encoding",
        "content-type",
        "no-message",
        "cut-message",
        "cut-prefix",
        "malformed-protobuf",
    ],
)
def test_refused_calls(native_server, path, headers, body, status, message):
    client = RawClient(native_server.endpoint)
    response = client.call(path, body, headers)
    assert response.status == status, response
    if message is not None:
        assert response.message == message
    else:
        assert response.message  # the handler's unmarshal error, as etcd words it
    # The connection itself is fine afterwards.
    assert client.call(RANGE, range_request()).status == 0
    client.close()


def test_broken_frames_drop_only_their_connection(native_server):
    baseline = settled_fds(native_server)
    cases = [
        preface()[:30],  # preface and half a SETTINGS frame, then gone
        preface() + b"\x00\x00\x10\x00",  # half a frame header
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not HTTP/2 at all
        preface() + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01",  # DATA over the frame size limit
        preface() + b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00",  # zero increment
    ]
    for data in cases:
        sock = socket.create_connection(("127.0.0.1", native_server.port), timeout=5)
        sock.sendall(data)
        if data.startswith(b"GET") or data.startswith(preface() + b"\xff"):
            # A protocol error: the server says GOAWAY (or nothing) and closes.
            while sock.recv(65536):
                pass
        sock.close()
        assert_serving(native_server)
    assert wait_fds(native_server, baseline) == baseline


def test_reset_mid_message_and_mid_stream(native_server):
    baseline = settled_fds(native_server)
    client = RawClient(native_server.endpoint)
    put = client.start(PUT)
    client.send(put, put_request(b"cut", b"x" * 1000)[:500])
    client.reset(put)
    watch = client.start(WATCH)
    create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"w"))
    client.send(watch, frame(create.SerializeToString()))
    assert rpc_pb2.WatchResponse.FromString(client.wait(watch, messages=1).messages()[0]).created
    client.reset(watch)
    got = client.call(RANGE, range_request(b"cut"))
    assert got.status == 0
    assert not rpc_pb2.RangeResponse.FromString(got.messages()[0]).kvs  # never applied
    client.close()
    assert wait_fds(native_server, baseline) == baseline


def test_half_closed_watch_keeps_delivering(native_server):
    client = RawClient(native_server.endpoint)
    watch = client.start(WATCH)
    create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"half"))
    client.send(watch, frame(create.SerializeToString()), end=True)
    client.wait(watch, messages=1)
    other = RawClient(native_server.endpoint)
    assert other.call(PUT, put_request(b"half", b"1")).status == 0
    responses = client.wait(watch, messages=2).messages()
    event = rpc_pb2.WatchResponse.FromString(responses[1]).events[0]
    assert (event.kv.key, event.kv.value) == (b"half", b"1")
    assert not client.responses[watch].ended  # etcd keeps a half-closed watch open
    other.close()
    client.close()


def test_zero_window_holds_one_call_not_the_server(native_server):
    stalled = RawClient(native_server.endpoint, window=0)
    sid = stalled.start(RANGE)
    stalled.send(sid, range_request(), end=True)
    with pytest.raises(TimeoutError):
        stalled.wait(sid, timeout=0.5)
    assert stalled.responses[sid].data == b""  # headers may come, DATA may not
    assert_serving(native_server)
    stalled.h2.increment_flow_control_window(1 << 20, sid)
    stalled.flush()
    response = stalled.wait(sid)
    assert response.status == 0 and len(response.messages()) == 1
    stalled.close()


def test_two_thousand_idle_connections(native_server):
    baseline = settled_fds(native_server)
    hello = preface()
    idle = []
    try:
        for _ in range(2000):
            sock = socket.create_connection(("127.0.0.1", native_server.port), timeout=5)
            sock.sendall(hello)
            idle.append(sock)
        assert_serving(native_server)
        deadline = time.monotonic() + SETTLE_S
        while open_fds(native_server) < baseline + 2000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_fds(native_server) >= baseline + 2000
    finally:
        for sock in idle:
            sock.close()
    assert wait_fds(native_server, baseline) == baseline
    assert_serving(native_server)


def test_slow_reader_is_held_back_others_are_served(native_server):
    """A watcher whose client never reads: the server stops sending to it (flow
    control, then the watch backlog pauses it) and its memory stays bounded."""
    baseline, rss_before = settled_fds(native_server), anon_rss_bytes(native_server)
    slow = RawClient(native_server.endpoint)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    watch = slow.start(WATCH)
    create = rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=b"slow/", range_end=b"slow0")
    )
    slow.send(watch, frame(create.SerializeToString()))
    slow.wait(watch, messages=1)
    writer = RawClient(native_server.endpoint)
    value = b"v" * 65536
    started = time.monotonic()
    for i in range(400):  # 25 MiB of events the slow client never reads
        assert writer.call(PUT, put_request(b"slow/%03d" % i, value)).status == 0
    assert time.monotonic() - started < 60
    assert_serving(native_server)
    grown = anon_rss_bytes(native_server) - rss_before
    assert grown < 20 * 1024 * 1024, f"server grew {grown} bytes for one stalled watcher"
    writer.close()
    slow.close()
    assert wait_fds(native_server, baseline) == baseline
    assert_serving(native_server)


def test_big_response_to_a_slow_reader_arrives_whole(native_server):
    """A 9.6 MB LIST to a client that reads nothing for a while and allows it all
    (HTTP/2 windows): the loop sends DATA frames straight from the response
    while the socket takes them and queues the rest; the client must get
    every byte, in order."""
    writer = RawClient(native_server.endpoint)
    values = {b"big/%02d" % i: bytes([65 + i]) * 1_200_000 for i in range(8)}
    for key, value in values.items():
        assert writer.call(PUT, put_request(key, value)).status == 0
    listing = frame(rpc_pb2.RangeRequest(key=b"big/", range_end=b"big0").SerializeToString())
    fast = writer.call(RANGE, listing)
    slow = RawClient(native_server.endpoint, window=WIDE_WINDOW)
    slow.h2.increment_flow_control_window(WIDE_WINDOW - 65535)
    sid = slow.start(RANGE)
    slow.send(sid, listing, end=True)
    time.sleep(0.5)  # the server fills the socket meanwhile
    response = slow.wait(sid)
    assert response.status == 0 and fast.status == 0
    got = rpc_pb2.RangeResponse.FromString(response.messages()[0])
    assert [(kv.key, kv.value) for kv in got.kvs] == sorted(values.items())
    assert response.messages() == fast.messages()
    writer.close()
    slow.close()


def test_ping_is_answered(native_server):
    client = RawClient(native_server.endpoint)
    client.h2.ping(b"k0s-ping")
    client.flush()
    deadline = time.monotonic() + SETTLE_S
    while client.pong is None and time.monotonic() < deadline:
        client.pump()
    assert client.pong == b"k0s-ping"
    client.close()


def ping_until_answered(client: RawClient, payload: bytes) -> bool:
    """Send a PING; True once acknowledged, False if the connection ends first."""
    client.pong = None
    client.h2.ping(payload)
    client.flush()
    deadline = time.monotonic() + SETTLE_S
    while client.pong != payload and client.terminated is None and time.monotonic() < deadline:
        if not client.pump():
            return False
    return client.pong == payload


def assert_calmed_down(client: RawClient) -> None:
    """grpc-go's answer to too many pings: GOAWAY ENHANCE_YOUR_CALM, then the close."""
    deadline = time.monotonic() + SETTLE_S
    while client.terminated is None and time.monotonic() < deadline:
        if not client.pump():
            break
    assert client.terminated is not None, "no GOAWAY"
    assert client.terminated.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert client.terminated.additional_data == b"too_many_pings"
    while client.pump():  # the server closes the connection
        pass


@pytest.mark.parametrize("with_call_open", [False, True], ids=["idle", "watching"])
def test_too_many_pings_get_goaway(native_server, with_call_open):
    """etcd's keepalive policy (min 5 s between pings with calls open, 2 h without):
    the first ping is free, 2 more too soon are strikes, the next is one too many."""
    client = RawClient(native_server.endpoint)
    if with_call_open:
        watch = client.start(WATCH)
        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"k"))
        client.send(watch, frame(create.SerializeToString()))
        client.wait(watch, messages=1)  # data from the server: strikes start at 0
    for number in range(3):
        assert ping_until_answered(client, b"ping-%03d" % number)
    client.h2.ping(b"ping-bad")
    client.flush()
    assert_calmed_down(client)
    client.close()
    assert_serving(native_server)


def test_pings_between_answers_are_welcome(native_server):
    """A ping after data from the server clears the strikes (a client's BDP pings
    follow what it receives): pings between calls, however frequent, are fine."""
    client = RawClient(native_server.endpoint)
    for number in range(8):
        assert client.call(RANGE, range_request()).status == 0
        assert ping_until_answered(client, b"ping-%03d" % number)
    assert client.terminated is None
    assert client.call(RANGE, range_request()).status == 0
    client.close()


def test_refused_and_reset_calls_leak_no_memory(native_server):
    """Thousands of refused, cut and reset calls: the server's heap stays put."""
    bad_calls = [
        ("/foo.Bar/Baz", range_request()),
        (RANGE, frame(b"", length=MAX_RECV + 1)),
        (RANGE, frame(b"abc", length=10)),
        (PUT, frame(b"\xff\xff\xff")),
    ]

    def round_of(calls: int) -> None:
        # A new connection every 200 resets: nghttp2 drops a connection that
        # resets ~1,000 streams in a burst (its rapid-reset flood guard).
        for start in range(0, calls, 200):
            client = RawClient(native_server.endpoint)
            for number in range(start, min(calls, start + 200)):
                path, body = bad_calls[number % len(bad_calls)]
                assert client.call(path, body).status != 0
                sid = client.start(PUT)
                client.send(sid, put_request(b"leak", b"x" * 100)[:50])
                client.reset(sid)
            client.close()

    round_of(400)  # warm-up: pools, caches, allocator arenas
    before = anon_rss_bytes(native_server)
    round_of(2000)
    grown = anon_rss_bytes(native_server) - before
    assert grown < 4 * 1024 * 1024, f"server heap grew {grown} bytes over 4,000 bad calls"
    assert_serving(native_server)
