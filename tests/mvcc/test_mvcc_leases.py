"""Leases: grant, renew, time-to-live, revoke, expiry, persistence."""

import bisect
import time

import pytest
from conftest import keys

from k0s_store.errors import (
    LeaseExistsError,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
)
from k0s_store.mvcc.lessor import promoted_deadlines
from k0s_store.mvcc.types import EVENT_DELETE, PutRequest, RangeRequest


def test_grant_rules(store):
    grant = store.lease_grant(0)
    assert grant.ttl == 1 and grant.id > 0  # raised to min_lease_ttl
    assert store.lease_grant(30, 77).id == 77
    with pytest.raises(LeaseExistsError):
        store.lease_grant(30, 77)
    with pytest.raises(LeaseTTLTooLargeError):
        store.lease_grant(9_000_000_001)
    assert store.lease_grant(9_000_000_000).ttl == 9_000_000_000
    rev, ids = store.lease_list()
    assert rev == 1 and 77 in ids and grant.id in ids and len(ids) == 3
    assert store.revision == 1  # grants take no revision


def test_time_to_live_and_renew(store):
    lease = store.lease_grant(30).id
    store.put(PutRequest(b"b", b"", lease=lease))
    store.put(PutRequest(b"a", b"", lease=lease))
    ttl = store.lease_time_to_live(lease, keys=True)
    assert ttl.granted_ttl == 30 and ttl.ttl in (29, 30) and ttl.keys == [b"a", b"b"]
    assert store.lease_time_to_live(lease).keys == []
    assert store.lease_renew(lease) == 30
    missing = store.lease_time_to_live(999)
    assert missing.ttl == -1 and missing.id == 999
    with pytest.raises(LeaseNotFoundError):
        store.lease_renew(999)


def test_reattaching_a_key_detaches_it(store):
    first, second = store.lease_grant(60).id, store.lease_grant(60).id
    store.put(PutRequest(b"k", b"", lease=first))
    store.put(PutRequest(b"k", b"", lease=second))
    assert store.lease_time_to_live(first, keys=True).keys == []
    assert store.lease_time_to_live(second, keys=True).keys == [b"k"]
    store.put(PutRequest(b"k", b""))  # no lease: detached
    assert store.lease_time_to_live(second, keys=True).keys == []
    store.put(PutRequest(b"k", b"", lease=first))
    store.lease_revoke(second)
    assert store.range(RangeRequest(b"k")).result.count == 1


def test_revoke_deletes_keys_in_one_revision(store):
    lease = store.lease_grant(60).id
    long_key = b"L" * 1000
    for key in (b"x", b"y", long_key):
        store.put(PutRequest(key, b"v", lease=lease))
    events = []
    store.watch(b"\0", b"\0", 0, prev_kv=False, filters=frozenset(), sink=events.append)
    assert store.lease_revoke(lease) == 5
    assert store.range(RangeRequest(b"\0", b"\0")).result.count == 0
    with pytest.raises(LeaseNotFoundError):
        store.lease_revoke(lease)
    assert store.lease_time_to_live(lease).ttl == -1
    deadline = time.time() + 5
    while not events and time.time() < deadline:
        time.sleep(0.01)
    (batch,) = events
    assert batch.revision == 5 and [e.type for e in batch.events] == [EVENT_DELETE] * 3
    empty = store.lease_grant(60).id
    assert store.lease_revoke(empty) == 5  # no key: no revision


def test_expiry_revokes_with_delete_events(store):
    lease = store.lease_grant(1).id
    store.put(PutRequest(b"e", b"v", lease=lease))
    deadline = time.time() + 5
    while store.range(RangeRequest(b"e")).result.count and time.time() < deadline:
        time.sleep(0.05)
    assert store.range(RangeRequest(b"e")).result.count == 0
    assert store.lease_time_to_live(lease).ttl == -1
    assert store.revision == 3


def test_restart_gives_every_lease_its_full_ttl_back(open_store):
    """etcd's Promote: at open, deadline = now + TTL + extension, so a lease
    that "expired" while the store was down keeps its keys."""
    store = open_store()
    kept = store.lease_grant(60).id
    short = store.lease_grant(1).id
    store.put(PutRequest(b"kept", b"", lease=kept))
    store.put(PutRequest(b"short", b"", lease=short))
    time.sleep(0.5)
    store.close()
    time.sleep(1.1)  # `short` would have expired while the store was down
    store = open_store(lease_promote_extension=0.5)
    ttl = store.lease_time_to_live(kept, keys=True)
    assert ttl.granted_ttl == 60 and ttl.ttl == 60 and ttl.keys == [b"kept"]
    refreshed = store.lease_time_to_live(short, keys=True)
    assert refreshed.granted_ttl == 1 and refreshed.ttl == 1 and refreshed.keys == [b"short"]
    assert keys(store.range(RangeRequest(b"\0", b"\0")).result.kvs) == [b"kept", b"short"]
    deadline = time.time() + 5  # then `short` expires as usual, 1.5 s after the open
    while store.range(RangeRequest(b"short")).result.count and time.time() < deadline:
        time.sleep(0.05)
    assert keys(store.range(RangeRequest(b"\0", b"\0")).result.kvs) == [b"kept"]
    assert store.lease_time_to_live(short).ttl == -1


def test_renewal_after_restart_counts_from_the_renewal(open_store):
    store = open_store()
    lease = store.lease_grant(3).id
    store.close()
    store = open_store(lease_promote_extension=2.0)
    assert store.lease_time_to_live(lease).ttl == 4  # 3 + 2 s extension, truncated
    assert store.lease_renew(lease) == 3
    assert store.lease_time_to_live(lease).ttl == 2  # a renewal sets now + TTL, no extension


def test_promote_spreads_deadlines_of_many_leases_as_etcd_does():
    few = promoted_deadlines({i: 10 for i in range(999)}, 100.0, 1.0)
    assert set(few.values()) == {111.0}
    many = sorted(promoted_deadlines({i: 10 for i in range(2000)}, 100.0, 1.0).values())
    assert many[0] == many[749] == 111.0 and many[750] > 112.0  # 3/4 of etcd's rate first
    busiest = max(bisect.bisect_left(many, start + 1.0) - i for i, start in enumerate(many))
    assert busiest <= 751, f"{busiest} leases expire within one second"
    assert many[-1] < 114.0  # pushed later, not forgotten
