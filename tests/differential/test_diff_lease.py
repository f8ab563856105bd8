"""Differential: leases (grant, revoke, keepalive, time-to-live, list, expiry)."""

import time

import pytest
from harness.differential import assert_same
from harness.rpc import Client, RpcFailure
from harness.streams import BidiStream

from k0s_store.proto import rpc_pb2

pytestmark = pytest.mark.etcd


def grant(pair, lease_id: int, ttl: int):
    return pair.same("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(ID=lease_id, TTL=ttl))


def _sorted_lists(response):
    """Leases and TimeToLive keys come from Go maps: order is not defined."""
    if isinstance(response, RpcFailure):
        return response
    copy = type(response)()
    copy.CopyFrom(response)
    fields = copy.DESCRIPTOR.fields_by_name
    if "leases" in fields:
        items = sorted(copy.leases, key=lambda lease: lease.ID)
        del copy.leases[:]
        copy.leases.extend(items)
    if "keys" in fields:
        keys = sorted(copy.keys)
        del copy.keys[:]
        copy.keys.extend(keys)
    return copy


def same_ttl_tolerant(pair, method: str, request) -> object:
    """Like pair.same, but a remaining TTL may differ by one second (wall clock)."""
    reference, subject = pair.both("Lease", method, request)
    reference, subject = _sorted_lists(reference), _sorted_lists(subject)
    answered = not isinstance(subject, RpcFailure) and not isinstance(reference, RpcFailure)
    if (
        answered
        and "TTL" in reference.DESCRIPTOR.fields_by_name
        and abs(subject.TTL - reference.TTL) <= 1
    ):
        subject.TTL = reference.TTL
    assert_same(reference, subject, f"Lease.{method}")
    return reference


def test_grant_client_ids_min_ttl_and_errors(pair):
    grant(pair, 1, 60)
    grant(pair, 2, 1)  # raised to the minimum TTL
    grant(pair, 3, 0)
    grant(pair, 4, -5)
    grant(pair, 1, 60)  # already exists
    grant(pair, 5, 9_000_000_000)
    grant(pair, 6, 9_000_000_001)  # too large
    same_ttl_tolerant(pair, "LeaseLeases", rpc_pb2.LeaseLeasesRequest())


def test_grant_server_chosen_id(pair):
    reference, subject = pair.both("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=30))
    assert not isinstance(subject, RpcFailure), subject
    assert subject.ID > 0 and reference.ID > 0
    subject.ID = reference.ID
    assert_same(reference, subject, "LeaseGrant without ID")
    subject_again = pair.subject.call("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=30))
    assert subject_again.ID not in (0, subject.ID)


def test_revoke_deletes_keys_with_events(pair):
    grant(pair, 10, 60)
    grant(pair, 11, 60)
    watch = pair.watch()
    try:
        watch.create(key=b"k", range_end=b"l", prev_kv=True)
        watch.expect_same(1)
        pair.kv("Put", key=b"k1", value=b"a", lease=10)
        pair.kv("Put", key=b"k2", value=b"b", lease=10)
        pair.kv("Put", key=b"k3", value=b"c", lease=11)
        same_ttl_tolerant(pair, "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=10, keys=True))
        pair.same("Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=10))
        watch.expect_same_drained()
        pair.kv("Range", key=b"k", range_end=b"l")
        pair.same("Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=10))
        pair.same("Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=0))
        same_ttl_tolerant(pair, "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=10, keys=True))
        same_ttl_tolerant(pair, "LeaseLeases", rpc_pb2.LeaseLeasesRequest())
    finally:
        watch.close()


def test_time_to_live(pair):
    grant(pair, 20, 100)
    pair.kv("Put", key=b"x", value=b"1", lease=20)
    pair.kv("Put", key=b"y", value=b"1", lease=20)
    same_ttl_tolerant(pair, "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=20))
    same_ttl_tolerant(pair, "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=20, keys=True))
    pair.kv("Put", key=b"y", value=b"2")  # detaches y
    pair.kv("DeleteRange", key=b"x")  # detaches x
    same_ttl_tolerant(pair, "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=20, keys=True))
    same_ttl_tolerant(pair, "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=99, keys=True))


def test_keepalive_stream(pair):
    grant(pair, 30, 10)
    streams = [
        BidiStream(pair.reference.stubs["Lease"].LeaseKeepAlive),
        BidiStream(pair.subject.stubs["Lease"].LeaseKeepAlive),
    ]
    try:
        for lease_id in (30, 31, 30):
            for stream in streams:
                stream.send(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
            reference, subject = (stream.recv(5.0) for stream in streams)
            assert subject is not None, f"no keepalive answer for lease {lease_id}"
            assert_same(reference, subject, f"LeaseKeepAlive({lease_id})")
    finally:
        for stream in streams:
            stream.close()


def test_expiry_deletes_keys(pair):
    grant(pair, 40, 2)  # the minimum TTL
    pair.kv("Put", key=b"e", value=b"1", lease=40)
    watch = pair.watch()
    try:
        watch.create(key=b"e", prev_kv=True)
        watch.expect_same(1)
        watch.expect_same(1, timeout=8.0)  # the delete event at expiry
        pair.kv("Range", key=b"e")
        same_ttl_tolerant(pair, "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=40))
    finally:
        watch.close()


def _restart_both(pair, downtime: float) -> None:
    """SIGTERM both servers, keep them down `downtime` seconds, start both again."""
    for client in (pair.reference, pair.subject):
        client.close()
    pair.reference_server.stop()
    pair.subject_server.stop()
    time.sleep(downtime)
    pair.reference_server.start()
    pair.subject_server.start()
    pair.reference_server.wait_ready()
    pair.subject_server.wait_ready()
    pair.reference = Client(pair.reference_server.channel())
    pair.subject = Client(pair.subject_server.channel())


def test_restart_past_the_ttl_refreshes_leases(pair):
    """etcd's lessor Promote: a lease that "expired" while the server was down
    gets its full TTL back at start and keeps its keys; it expires later."""
    grant(pair, 50, 2)  # the minimum TTL
    grant(pair, 51, 30)
    pair.kv("Put", key=b"r/short", value=b"1", lease=50)
    pair.kv("Put", key=b"r/long", value=b"1", lease=51)
    _restart_both(pair, downtime=3.0)
    for lease_id in (50, 51):
        request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=True)
        answer = same_ttl_tolerant(pair, "LeaseTimeToLive", request)
        assert answer.TTL >= 1, f"lease {lease_id} not refreshed by the restart: {answer}"
    pair.kv("Range", key=b"r/", range_end=b"r0")
    same_ttl_tolerant(pair, "LeaseLeases", rpc_pb2.LeaseLeasesRequest())
    time.sleep(4.0)  # now past the refreshed TTL (2 s + etcd's 1 s extension)
    pair.kv("Range", key=b"r/", range_end=b"r0")
    same_ttl_tolerant(pair, "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=50, keys=True))
