"""A history with every kind of record a snapshot carries, and a dump of a
server's state to compare two servers by.

The history (`write_history`) has versions, deletes and recreations (key
generations), a txn with several sub-revisions, leases with and without
keys, a revoked lease, keys longer than LMDB's key limit, a value spanning
bbolt overflow pages, enough entries for a `key` bucket of many leaves under
a branch page, and a physical compaction in the middle.
"""

from harness.normalise import render
from harness.rpc import Client, RpcFailure
from harness.streams import BidiStream

from k0s_store.proto import rpc_pb2 as pb

LEASE_WITH_KEYS = 0x1001
LEASE_WITHOUT_KEYS = 0x1002
LEASE_REVOKED = 0x1003
LEASE_TTL = 600
TTL_SLACK_S = 10
LONG_KEY = b"/long/" + b"k" * 600
ALL = {"key": b"\0", "range_end": b"\0"}


def call(client: Client, service: str, method: str, request):
    """A call that must succeed."""
    response = client.call(service, method, request)
    assert not isinstance(response, RpcFailure), f"{method}: {response}"
    return response


def put(client: Client, key: bytes, value: bytes, lease: int = 0) -> int:
    return call(
        client, "KV", "Put", pb.PutRequest(key=key, value=value, lease=lease)
    ).header.revision


def write_history(client: Client) -> int:
    """Write the history; returns the revision it was compacted at."""
    for i in range(40):
        put(client, b"/registry/pods/p%02d" % i, b"v1-%d" % i)
    for i in range(0, 40, 3):
        put(client, b"/registry/pods/p%02d" % i, b"v2-%d" % i)
    call(client, "KV", "DeleteRange", pb.DeleteRangeRequest(key=b"/registry/pods/p05"))
    call(
        client,
        "KV",
        "DeleteRange",
        pb.DeleteRangeRequest(key=b"/registry/pods/p3", range_end=b"/registry/pods/p4"),
    )
    ops = [
        pb.RequestOp(request_put=pb.PutRequest(key=b"/txn/a", value=b"1")),
        pb.RequestOp(request_put=pb.PutRequest(key=b"/txn/b", value=b"2")),
        pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=b"/registry/pods/p10")),
    ]
    call(client, "KV", "Txn", pb.TxnRequest(success=ops))
    for lease_id, ttl in ((LEASE_WITH_KEYS, LEASE_TTL), (LEASE_WITHOUT_KEYS, 300)):
        call(client, "Lease", "LeaseGrant", pb.LeaseGrantRequest(ID=lease_id, TTL=ttl))
    call(client, "Lease", "LeaseGrant", pb.LeaseGrantRequest(ID=LEASE_REVOKED, TTL=LEASE_TTL))
    put(client, b"/leased/a", b"a", LEASE_WITH_KEYS)
    put(client, b"/leased/b", b"b", LEASE_WITH_KEYS)
    put(client, b"/revoked/x", b"x", LEASE_REVOKED)
    call(client, "Lease", "LeaseRevoke", pb.LeaseRevokeRequest(ID=LEASE_REVOKED))
    put(client, LONG_KEY + b"1", b"long one")
    put(client, LONG_KEY + b"2", b"long two")
    put(client, LONG_KEY + b"1", b"long one again")
    put(client, b"/big", bytes(range(256)) * 800)  # 200 KiB: overflow pages
    compact_at = 0
    for i in range(160):
        rev = put(client, b"/bulk/%03d" % i, (b"%04d" % i) * 500)
        if i == 80:
            compact_at = rev
    call(client, "KV", "Compact", pb.CompactionRequest(revision=compact_at, physical=True))
    put(client, b"/registry/pods/p05", b"recreated")
    put(client, b"/registry/pods/p01", b"v3")
    call(client, "KV", "DeleteRange", pb.DeleteRangeRequest(key=b"/bulk/00", range_end=b"/bulk/01"))
    return compact_at


def dump(client: Client, compact_rev: int) -> dict[str, str]:
    """Rendered answers that must be equal on two servers with the same state.

    Covers the keys now and at old revisions, the compaction boundary, HashKV
    now and in the past, every event since the compaction (a watch), and the
    leases with their keys.
    """
    now = call(client, "KV", "Range", pb.RangeRequest(**ALL))
    rev = now.header.revision
    state = {"range now": render(now)}
    for at in sorted({compact_rev, compact_rev + 1, (compact_rev + rev) // 2, rev}):
        state[f"range at {at}"] = render(
            client.call("KV", "Range", pb.RangeRequest(**ALL, revision=at))
        )
    state["range compacted"] = render(
        client.call("KV", "Range", pb.RangeRequest(**ALL, revision=compact_rev - 1))
    )
    for at in (0, compact_rev + 1, rev - 1):
        state[f"hashkv at {at}"] = render(
            client.call("Maintenance", "HashKV", pb.HashKVRequest(revision=at))
        )
    state["events"] = _events_since(client, compact_rev + 1, rev)
    leases = call(client, "Lease", "LeaseLeases", pb.LeaseLeasesRequest())
    ids = sorted(lease.ID for lease in leases.leases)
    state["leases"] = repr(ids)
    for lease_id in ids:
        ttl = call(
            client, "Lease", "LeaseTimeToLive", pb.LeaseTimeToLiveRequest(ID=lease_id, keys=True)
        )
        state[f"lease {lease_id:x}"] = f"granted {ttl.grantedTTL} keys {sorted(ttl.keys)}"
    return state


def remaining_ttls(client: Client) -> dict[int, tuple[int, int]]:
    """(remaining seconds, granted TTL) of every lease."""
    leases = call(client, "Lease", "LeaseLeases", pb.LeaseLeasesRequest()).leases
    request = pb.LeaseTimeToLiveRequest
    answers = {
        lease.ID: call(client, "Lease", "LeaseTimeToLive", request(ID=lease.ID)) for lease in leases
    }
    return {lease_id: (answer.TTL, answer.grantedTTL) for lease_id, answer in answers.items()}


def _events_since(client: Client, start: int, until: int) -> str:
    stream = BidiStream(client.stubs["Watch"].Watch)
    try:
        create = pb.WatchCreateRequest(**ALL, start_revision=start, prev_kv=True)
        stream.send(pb.WatchRequest(create_request=create))
        events: list[str] = []
        last = 0
        while last < until:
            response = stream.recv(timeout=10)
            assert response is not None and not isinstance(response, RpcFailure), response
            for event in response.events:
                events.append(render(event))
                last = event.kv.mod_revision
        return "\n".join(events)
    finally:
        stream.close()


def assert_same_state(reference: Client, subjects: list[Client], compact_rev: int) -> None:
    """Every subject shows the reference's history, leases and hashes."""
    ref_state = dump(reference, compact_rev)
    for subject in subjects:
        sub_state = dump(subject, compact_rev)
        for name, text in ref_state.items():
            assert sub_state[name] == text, (
                f"{name}\n--- source:\n{text}\n--- restored:\n{sub_state[name]}"
            )
    for subject in subjects:
        _assert_same_leases(reference, subject)


def _assert_same_leases(reference: Client, subject: Client) -> None:
    ref_ttl, sub_ttl = remaining_ttls(reference), remaining_ttls(subject)
    assert ref_ttl.keys() == sub_ttl.keys()
    # A move keeps a lease's remaining time (give or take the seconds between the
    # two servers' starts); etcd's own snapshots carry none (no checkpoints), and
    # then the lease gets its full TTL again, as etcd's own restart gives it.
    for lease_id, (remaining, granted) in ref_ttl.items():
        restored = sub_ttl[lease_id][0]
        assert remaining - TTL_SLACK_S <= restored <= granted + 2, (lease_id, remaining, restored)
