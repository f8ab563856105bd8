"""The requests the MVCC store takes and the results it gives back.

These mirror etcd's RangeRequest, PutRequest, DeleteRangeRequest, Compare
and TxnRequest field for field (same names, same defaults, enum values as
plain ints) so the service layer can build them straight from the wire.
Stored key-values travel as `KeyValueBytes`: the marshalled
`mvccpb.KeyValue` exactly as kept in LMDB, so a response is assembled
without re-encoding.
"""

from typing import NamedTuple

KeyValueBytes = bytes  # a marshalled mvccpb.KeyValue

# RangeRequest.SortOrder / SortTarget
SORT_NONE, SORT_ASCEND, SORT_DESCEND = 0, 1, 2
TARGET_KEY, TARGET_VERSION, TARGET_CREATE, TARGET_MOD, TARGET_VALUE = 0, 1, 2, 3, 4

# Compare.CompareResult / CompareTarget (TARGET_LEASE only exists for Compare)
EQUAL, GREATER, LESS, NOT_EQUAL = 0, 1, 2, 3
CMP_VERSION, CMP_CREATE, CMP_MOD, CMP_VALUE, CMP_LEASE = 0, 1, 2, 3, 4

# mvccpb.Event.EventType; WatchCreateRequest.FilterType
EVENT_PUT, EVENT_DELETE = 0, 1
FILTER_NOPUT, FILTER_NODELETE = 0, 1


class RangeRequest(NamedTuple):
    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: int = SORT_NONE
    sort_target: int = TARGET_KEY
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


class PutRequest(NamedTuple):
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


class DeleteRangeRequest(NamedTuple):
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


class Compare(NamedTuple):
    result: int
    target: int
    key: bytes
    # The compared operand: an int for VERSION/CREATE/MOD/LEASE, bytes for VALUE.
    operand: int | bytes = 0
    range_end: bytes = b""


class TxnRequest(NamedTuple):
    compare: tuple[Compare, ...] = ()
    success: tuple["RequestOp", ...] = ()
    failure: tuple["RequestOp", ...] = ()


RequestOp = RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest


class RangeResult(NamedTuple):
    kvs: list[KeyValueBytes]  # keys_only already applied; empty when count_only
    more: bool
    count: int


class PutResult(NamedTuple):
    prev_kv: KeyValueBytes | None


class DeleteRangeResult(NamedTuple):
    deleted: int
    prev_kvs: list[KeyValueBytes]  # empty unless prev_kv was asked for


class TxnResult(NamedTuple):
    succeeded: bool
    responses: list["OpResult"]  # one per op of the branch taken, same order


OpResult = RangeResult | PutResult | DeleteRangeResult | TxnResult


class Response(NamedTuple):
    """What every store call returns: the header revision and the result.

    `revision` is what etcd puts in ResponseHeader.revision: the store's
    revision after the request (the new revision for a write, the current
    one for a read or a txn that wrote nothing).
    """

    revision: int
    result: OpResult


class Event(NamedTuple):
    type: int  # EVENT_PUT or EVENT_DELETE
    kv: KeyValueBytes  # for a delete: key and mod_revision (the delete's revision) only
    prev_kv: KeyValueBytes | None  # set only for watchers that asked for prev_kv


class LeaseGrant(NamedTuple):
    revision: int
    id: int
    ttl: int


class LeaseTimeToLive(NamedTuple):
    revision: int
    id: int
    ttl: int  # remaining seconds; -1 when the lease does not exist
    granted_ttl: int
    keys: list[bytes]


class WatchBatch(NamedTuple):
    """What a watcher's sink receives, strictly in revision order.

    `events` holds every event of each revision it covers (none for a
    progress notice or a compaction notice); `revision` is the store
    revision the batch brings the watcher up to; `compact_revision` is set
    (and the watcher is dead) when its start revision was compacted.
    """

    events: list[Event]
    revision: int
    compact_revision: int = 0


class StoreStatus(NamedTuple):
    revision: int
    db_size: int  # bytes of the data file
    db_size_in_use: int  # bytes of pages holding live data
    alarms: list[int]  # raised etcd AlarmType values
