"""Which keys a user may read or write (etcd's auth/range_perm_cache.go).

A permission covers an interval of keys [begin, end). As in etcd's
interval tree, bounds compare "affinely": an empty bound lies past every
key. An `authpb.Permission` (key, range_end) covers:

- range_end empty: the single key, [key, key + b"\\0");
- range_end b"\\0": every key from key on, [key, +inf);
- otherwise [key, range_end).

A request is allowed when:

- it names one key (range_end empty) and some permission contains it;
- it names a range [key, range_end) (b"\\0": to the end) and the union of the
  permissions covers all of it, without a gap.

Worked example: READ on [a, c) and on [c, e) allows Range(b, d) (the two
intervals touch) but not Range(b, f); READ on key "x" alone allows
Range("x") but not Range("x", "x\\0\\0").
"""

from collections.abc import Iterable

from k0s_store.proto import auth_pb2

READ, WRITE, READWRITE = (
    auth_pb2.Permission.READ,
    auth_pb2.Permission.WRITE,
    auth_pb2.Permission.READWRITE,
)

Interval = tuple[bytes, bytes]  # (begin, end); b"" is +inf


def _cmp(a: bytes, b: bytes) -> int:
    """Compare two bounds; an empty bound is greater than any other."""
    if not a:
        return 0 if not b else 1
    if not b:
        return -1
    return (a > b) - (a < b)


def _overlaps(q: Interval, n: Interval) -> bool:
    """etcd's Interval.Compare(q, n) == 0."""
    left = _cmp(q[0], n[0]) < 0 and _cmp(q[1], n[0]) <= 0
    right = _cmp(q[0], n[1]) >= 0
    return not left and not right


def permission_interval(key: bytes, range_end: bytes) -> Interval:
    """The keys an authpb.Permission (key, range_end) covers."""
    if not range_end:
        return key, key + b"\0"
    return key, b"" if range_end == b"\0" else range_end


class KeyPermissions:
    """The read and write intervals of one user, merged from all its roles."""

    __slots__ = ("read", "write")

    def __init__(self, perms: Iterable[auth_pb2.Permission]) -> None:
        read: list[Interval] = []
        write: list[Interval] = []
        for perm in perms:
            interval = permission_interval(perm.key, perm.range_end)
            if perm.permType in (READ, READWRITE):
                read.append(interval)
            if perm.permType in (WRITE, READWRITE):
                write.append(interval)
        self.read = _sorted(read)
        self.write = _sorted(write)

    def allows(self, key: bytes, range_end: bytes, write: bool) -> bool:
        """Whether the user may read (write=False) or write [key, range_end)."""
        intervals = self.write if write else self.read
        if not range_end:
            point = (key, key + b"\0")
            return any(_overlaps(point, n) for n in intervals)
        return _covers(intervals, (key, b"" if range_end == b"\0" else range_end))


def _sorted(intervals: list[Interval]) -> list[Interval]:
    """By begin, empty (+inf) begins last: the order etcd's tree visits them in."""
    return sorted(intervals, key=lambda n: (not n[0], n[0]))


def _covers(intervals: list[Interval], q: Interval) -> bool:
    """etcd's intervalTree.Contains: the overlapping intervals, in begin order,
    leave no gap and reach from q's begin to q's end."""
    min_begin = max_end = None
    for n in intervals:
        if not _overlaps(q, n):
            continue
        if min_begin is None:
            min_begin, max_end = n
            continue
        if _cmp(max_end, n[0]) < 0:
            return False
        if _cmp(n[1], max_end) > 0:
            max_end = n[1]
    return min_begin is not None and _cmp(max_end, q[1]) >= 0 and _cmp(min_begin, q[0]) <= 0
