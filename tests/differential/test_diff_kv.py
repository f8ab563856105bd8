"""Differential: Range, Put, DeleteRange and revisions, etcd vs subject."""

import pytest

from k0s_store.proto import rpc_pb2

pytestmark = pytest.mark.etcd

Range = rpc_pb2.RangeRequest


def _fill(pair, keys=(b"a", b"b", b"b1", b"b2", b"c", b"d")) -> None:
    for index, key in enumerate(keys):
        pair.kv("Put", key=key, value=b"v%d" % index)


def test_revisions_versions_and_tombstones(pair):
    pair.kv("Range", key=b"k")
    pair.kv("Put", key=b"k", value=b"1")
    pair.kv("Put", key=b"k", value=b"2")
    pair.kv("Range", key=b"k")
    pair.kv("DeleteRange", key=b"k")
    pair.kv("Range", key=b"k")
    pair.kv("Put", key=b"k", value=b"3")  # new generation: version 1 again
    pair.kv("Range", key=b"k")
    for revision in range(1, 6):
        pair.kv("Range", key=b"k", revision=revision)
    pair.kv("DeleteRange", key=b"missing")  # no revision bump


def test_range_single_prefix_from_key(pair):
    _fill(pair)
    pair.kv("Range", key=b"b")
    pair.kv("Range", key=b"b", range_end=b"c")
    pair.kv("Range", key=b"b", range_end=b"\0")
    pair.kv("Range", key=b"\0", range_end=b"\0")
    pair.kv("Range", key=b"c", range_end=b"b")  # end before key: empty
    pair.kv("Range", key=b"zz")


@pytest.mark.parametrize("limit", [0, 1, 2, 6, 7])
def test_range_limit_more_count(pair, limit):
    _fill(pair)
    pair.kv("Range", key=b"a", range_end=b"\0", limit=limit)
    pair.kv("Range", key=b"b", range_end=b"c", limit=limit, keys_only=True)


def test_range_revisions_past_current_future_compacted(pair):
    _fill(pair)
    pair.kv("DeleteRange", key=b"b", range_end=b"c")
    for revision in range(0, 10):
        pair.kv("Range", key=b"a", range_end=b"\0", revision=revision)
    pair.kv("Range", key=b"a", range_end=b"\0", revision=100)
    pair.kv("Compact", revision=4)
    for revision in (1, 3, 4, 5, 8):
        pair.kv("Range", key=b"a", range_end=b"\0", revision=revision)
        pair.kv("Range", key=b"a", range_end=b"\0", revision=revision, serializable=True)


@pytest.mark.parametrize("target", list(Range.SortTarget.values()))
@pytest.mark.parametrize("order", list(Range.SortOrder.values()))
def test_range_sort(pair, order, target):
    for key, value in [(b"c", b"1"), (b"a", b"3"), (b"b", b"2"), (b"a", b"0"), (b"d", b"2")]:
        pair.kv("Put", key=key, value=value)
    pair.kv("Range", key=b"a", range_end=b"\0", sort_order=order, sort_target=target)
    pair.kv("Range", key=b"a", range_end=b"\0", sort_order=order, sort_target=target, limit=2)


def test_range_flags_and_filters(pair):
    _fill(pair)
    pair.kv("Put", key=b"b1", value=b"again")
    pair.kv("Range", key=b"a", range_end=b"\0", serializable=True)
    pair.kv("Range", key=b"a", range_end=b"\0", keys_only=True)
    pair.kv("Range", key=b"a", range_end=b"\0", count_only=True)
    pair.kv("Range", key=b"a", range_end=b"\0", count_only=True, limit=1)
    filters = ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision")
    for field in filters:
        for value in (0, 3, 5, 7, 100):
            pair.kv("Range", key=b"a", range_end=b"\0", **{field: value})
            pair.kv("Range", key=b"a", range_end=b"\0", limit=2, **{field: value})


def test_put_prev_kv_ignore_value_ignore_lease(pair):
    pair.kv("Put", key=b"k", value=b"1", prev_kv=True)  # no previous: no prev_kv
    pair.kv("Put", key=b"k", value=b"2", prev_kv=True)
    pair.kv("Put", key=b"k", ignore_value=True, prev_kv=True)
    pair.kv("Put", key=b"k", ignore_lease=True)
    pair.kv("Range", key=b"k")
    pair.kv("Put", key=b"missing", ignore_value=True)  # key not found
    pair.kv("Put", key=b"missing", ignore_lease=True)
    pair.kv("Put", key=b"k", value=b"x", ignore_value=True)  # value is provided
    pair.kv("Put", key=b"k", lease=5, ignore_lease=True)  # lease is provided
    pair.kv("Put", key=b"k", value=b"x", lease=12345)  # lease not found
    pair.kv("Put", key=b"", value=b"x")  # key is not provided
    pair.kv("Range", key=b"")
    pair.kv("DeleteRange", key=b"")
    pair.kv("Put", key=b"\0", value=b"")
    pair.kv("Range", key=b"\0")


def test_put_with_lease(pair):
    pair.same("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(ID=77, TTL=60))
    pair.kv("Put", key=b"k", value=b"1", lease=77)
    pair.kv("Put", key=b"k", ignore_value=True, prev_kv=True)  # keeps the lease
    pair.kv("Put", key=b"k", value=b"2")  # drops the lease
    pair.kv("Put", key=b"k", value=b"3", lease=77)
    pair.kv("Put", key=b"k", value=b"4", ignore_lease=True, prev_kv=True)
    pair.kv("Range", key=b"k")


def test_delete_range(pair):
    _fill(pair)
    pair.kv("DeleteRange", key=b"a", prev_kv=True)
    pair.kv("DeleteRange", key=b"a", prev_kv=True)
    pair.kv("DeleteRange", key=b"b", range_end=b"c", prev_kv=True)
    pair.kv("DeleteRange", key=b"c", range_end=b"\0")
    pair.kv("Range", key=b"\0", range_end=b"\0")
    pair.kv("Range", key=b"a", range_end=b"\0", revision=6)


def test_long_and_binary_keys(pair):
    keys = [b"x" * 600, b"x" * 600 + b"\xff", b"x" * 3000, b"x" * 100_000, bytes(range(256))]
    for key in keys:
        pair.kv("Put", key=key, value=key[::-1])
    for key in keys:
        pair.kv("Range", key=key)
    pair.kv("Range", key=b"x", range_end=b"y", keys_only=True)
    pair.kv("DeleteRange", key=b"x" * 600, range_end=b"x" * 601, prev_kv=True)
    pair.kv("Range", key=b"\0", range_end=b"\0", keys_only=True)


def test_hash_kv_matches(pair):
    _fill(pair)
    pair.kv("DeleteRange", key=b"b", range_end=b"c")
    pair.kv("Put", key=b"a", value=b"again")
    for revision in (0, 3, 8):
        pair.same("Maintenance", "HashKV", rpc_pb2.HashKVRequest(revision=revision))
    pair.kv("Compact", revision=5)
    pair.same("Maintenance", "HashKV", rpc_pb2.HashKVRequest(revision=0))
    for revision in (4, 5, 6):  # below, at and above the compact revision
        pair.same("Maintenance", "HashKV", rpc_pb2.HashKVRequest(revision=revision))
