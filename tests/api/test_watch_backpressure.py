"""End to end: a watcher that does not read costs the server a bounded amount
of memory, and once it reads it still gets every event once, in order.

`python -m k0s_store serve` runs with its default stream backlog
(k0s_store.api.watch.DEFAULT_BACKLOG_BYTES). The server's memory is measured
as RssAnon (heap) from /proc/<pid>/status: VmRSS also counts the pages of the
LMDB file mapped by readers, which grow with the data, not with the backlog.
Before the bound, the same load grew RssAnon by more than the events' size.
"""

import queue
import re
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest

from k0s_store.api.watch import DEFAULT_BACKLOG_BYTES
from k0s_store.proto import rpc_pb2 as pb
from k0s_store.proto import rpc_pb2_grpc as stubs

CALL_TIMEOUT = 60.0  # the watch call, so that a lost event fails instead of hanging
TXNS = 2000  # one revision each
PUTS_PER_TXN = 20
VALUE = b"v" * 1024
WRITERS = 2
# Beyond the backlog bound: one batch over it, gRPC's own buffers, allocator slack.
MEMORY_SLACK_BYTES = 10 * 1024 * 1024


def rss_anon_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"RssAnon:\s+(\d+) kB", status).group(1)) * 1024


@pytest.fixture
def server_address(servers):
    """A running `k0s_store serve` on a free loopback port: (pid, address)."""
    server = servers("ours").wait_ready()
    yield server.proc.pid, server.endpoint
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0, server.log_tail()


def write_all(address: str, txns: range, failures: list) -> None:
    """One txn of PUTS_PER_TXN puts per number in `txns`; RPC errors go to `failures`."""
    kv = stubs.KVStub(grpc.insecure_channel(address))
    try:
        for txn in txns:
            puts = [
                pb.RequestOp(request_put=pb.PutRequest(key=b"w/%05d/%02d" % (txn, i), value=VALUE))
                for i in range(PUTS_PER_TXN)
            ]
            kv.Txn(pb.TxnRequest(success=puts), timeout=10)
    except grpc.RpcError as error:
        failures.append(error)


def open_unread_watch(address: str):
    """A watch on every w/ key, created and then left unread: its responses."""
    requests: queue.Queue = queue.Queue()
    requests.put(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"w/", range_end=b"w0")))
    watch = stubs.WatchStub(grpc.insecure_channel(address))
    responses = watch.Watch(iter(requests.get, None), timeout=CALL_TIMEOUT)
    assert next(responses).created
    return responses


def test_unread_watch_keeps_server_memory_bounded_and_loses_nothing(server_address):
    pid, address = server_address
    stubs.KVStub(grpc.insecure_channel(address)).Put(pb.PutRequest(key=b"warm", value=b"x"))
    responses = open_unread_watch(address)
    before = rss_anon_bytes(pid)
    failures: list = []
    writers = [
        threading.Thread(target=write_all, args=(address, range(k, TXNS, WRITERS), failures))
        for k in range(WRITERS)
    ]
    for thread in writers:
        thread.start()
    peak = before
    while any(thread.is_alive() for thread in writers):
        peak = max(peak, rss_anon_bytes(pid))
        time.sleep(0.05)
    for thread in writers:
        thread.join()
    assert not failures
    peak = max(peak, rss_anon_bytes(pid))
    written = TXNS * PUTS_PER_TXN * len(VALUE)
    assert written / 2 > DEFAULT_BACKLOG_BYTES + MEMORY_SLACK_BYTES  # the check can tell
    assert peak - before < DEFAULT_BACKLOG_BYTES + MEMORY_SLACK_BYTES

    keys, revisions = [], []
    for response in responses:
        for event in response.events:
            keys.append(event.kv.key)
            revisions.append(event.kv.mod_revision)
        if len(keys) >= TXNS * PUTS_PER_TXN:
            break
    responses.cancel()
    # Each txn is one revision; whichever writer committed first, revisions
    # ascend and each one carries its txn's keys in order.
    assert len(keys) == TXNS * PUTS_PER_TXN
    assert revisions == sorted(revisions)
    assert len(set(revisions)) == TXNS and max(revisions) - min(revisions) == TXNS - 1
    assert sorted(keys) == sorted({*keys})
    for start in range(0, len(keys), PUTS_PER_TXN):
        txn = keys[start : start + PUTS_PER_TXN]
        assert txn == [txn[0][:-2] + b"%02d" % i for i in range(PUTS_PER_TXN)]
        assert len(set(revisions[start : start + PUTS_PER_TXN])) == 1


def test_history_compacted_while_unread_gives_the_compacted_response(server_address):
    _, address = server_address
    kv = stubs.KVStub(grpc.insecure_channel(address))
    responses = open_unread_watch(address)
    failures: list = []
    txns = 500  # 10 MiB of events: far beyond the backlog, so the watcher pauses early
    write_all(address, range(txns), failures)
    assert not failures
    latest = kv.Range(pb.RangeRequest(key=b"w/"), timeout=10).header.revision
    kv.Compact(pb.CompactionRequest(revision=latest), timeout=10)
    revisions = []
    for response in responses:
        revisions += [event.kv.mod_revision for event in response.events]
        if response.canceled:
            break
    responses.cancel()
    # What was queued before the pause arrives, in order; then, as etcd answers
    # a watcher whose next revision is compacted:
    assert response.compact_revision == latest and response.header.revision == 0
    assert not response.events
    assert 0 < len(revisions) < txns * PUTS_PER_TXN
    distinct = sorted(set(revisions))
    assert revisions == sorted(revisions) and distinct == list(range(2, 2 + len(distinct)))
