"""One round of the cross-mode test (test_cross_mode.py), run in its own process.

Usage: python cross_mode_worker.py DATA_DIR SEED FIRST_ROUND [LAST_ROUND]

Opens the store in DATA_DIR in whatever mode K0S_STORE_PURE selects,
prints (as JSON) the state found, applies rounds FIRST_ROUND..LAST_ROUND of
the seeded random workload, and prints the state left: {"mode", "before",
"after"}. A state
is the revision, the compact revision, every live key-value at every
revision since the compaction, and HashKV at several revisions.
"""

import json
import random
import sys

from k0s_store.core import PURE, codec
from k0s_store.errors import EtcdError
from k0s_store.mvcc import Store
from k0s_store.mvcc.types import (
    CMP_CREATE,
    CMP_MOD,
    CMP_VALUE,
    CMP_VERSION,
    EQUAL,
    GREATER,
    LESS,
    NOT_EQUAL,
    Compare,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)

OPS_PER_ROUND = 60
# Puts of one key at the end of every round: past 1,024 records its index
# entry keeps the newest and moves the older to history chunks.
HOT_KEY = b"/hot"
HOT_PUTS = 1100
LONG_PREFIX = b"/long/" + b"p" * 500  # keys past LMDB's limit share one index group


def _key(rng: random.Random) -> bytes:
    n = rng.randrange(24)
    if n < 4:
        return LONG_PREFIX + b"%d" % n
    return b"/k/%02d" % n


def _value(rng: random.Random) -> bytes:
    size = rng.choice([0, 3, 100, 5000])  # 5000: an LMDB overflow page
    return rng.randbytes(size)


def _compare(rng: random.Random) -> Compare:
    target = rng.choice([CMP_VERSION, CMP_CREATE, CMP_MOD, CMP_VALUE])
    operand = _value(rng)[:3] if target == CMP_VALUE else rng.randrange(0, 40)
    result = rng.choice([EQUAL, GREATER, LESS, NOT_EQUAL])
    return Compare(result, target, _key(rng), operand)


def _request_op(rng: random.Random, depth: int):
    kind = rng.randrange(4 if depth < 2 else 3)
    if kind == 0:
        return PutRequest(_key(rng), _value(rng), prev_kv=True)
    if kind == 1:
        return DeleteRangeRequest(_key(rng), prev_kv=True)
    if kind == 2:
        return RangeRequest(b"/k/0", b"/k/1")
    return _txn(rng, depth + 1)


def _txn(rng: random.Random, depth: int = 0) -> TxnRequest:
    return TxnRequest(
        tuple(_compare(rng) for _ in range(rng.randrange(3))),
        tuple(_request_op(rng, depth) for _ in range(rng.randrange(3))),
        tuple(_request_op(rng, depth) for _ in range(rng.randrange(3))),
    )


def _unique_keys(txn: TxnRequest) -> bool:
    """etcd refuses a txn branch writing one key twice (the API layer checks)."""
    for branch in (txn.success, txn.failure):
        written = [op.key for op in branch if isinstance(op, PutRequest | DeleteRangeRequest)]
        if len(written) != len(set(written)):
            return False
    return True


def apply_round(store: Store, seed: int, round_: int) -> None:
    """Round `round_` of the workload: the same calls whatever the mode."""
    rng = random.Random(seed * 1000 + round_)
    lease = 1000 + round_
    store.lease_grant(3600, lease)
    for _ in range(OPS_PER_ROUND):
        op = rng.randrange(10)
        try:
            if op < 4:
                store.put(PutRequest(_key(rng), _value(rng), lease=lease if op == 0 else 0))
            elif op == 4:
                store.delete_range(DeleteRangeRequest(_key(rng)))
            elif op == 5:
                store.delete_range(DeleteRangeRequest(b"/k/1", b"/k/2"))
            elif op < 9:
                txn = _txn(rng)
                if _unique_keys(txn):
                    store.txn(txn)
            elif rng.random() < 0.5:
                store.compact(max(1, store.revision - rng.randrange(30)), physical=True)
            else:
                store.defragment()
        except EtcdError:
            pass  # refused identically in both modes: the state says so
    if round_ % 2:
        store.lease_revoke(lease - 1)  # the previous round's lease, with its keys
    for i in range(HOT_PUTS):
        store.put(PutRequest(HOT_KEY, b"%d/%d" % (round_, i)))


def state(store: Store) -> dict:
    """Everything observable: revisions, the live key-values at every 7th
    revision since the compaction and the last 100, the hot key at every
    one, HashKV at several revisions, and how many history chunks there are."""
    rev, compact = store.revision, store.compact_revision
    history, hot = {}, {}
    for at in range(compact + 1 if compact else 1, rev + 1):
        if at % 7 == 0 or at > rev - 100:
            result = store.range(RangeRequest(b"\0", b"\0", revision=at)).result
            history[at] = [list(_jsonable(codec.decode_kv(kv))) for kv in result.kvs]
        result = store.range(RangeRequest(HOT_KEY, revision=at)).result
        hot[at] = [list(_jsonable(codec.decode_kv(kv))) for kv in result.kvs]
    hashes = {at: store.hash_kv(at)[0] for at in sorted({rev, (rev + compact) // 2 or rev})}
    backend = store._backend
    with backend.read() as txn:
        chunks = txn.stat(backend.dbs.index_history)["entries"]
    return {
        "revision": rev,
        "compact": compact,
        "history": history,
        "hot": hot,
        "hashes": hashes,
        "chunks": chunks,
    }


def _jsonable(fields):
    return (f.hex() if isinstance(f, bytes) else f for f in fields)


def main() -> None:
    data_dir, seed, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    last = int(sys.argv[4]) if len(sys.argv) > 4 else first
    store = Store(data_dir, fsync=False)
    try:
        before = state(store)
        for round_ in range(first, last + 1):
            apply_round(store, seed, round_)
        after = state(store)
    finally:
        store.close()
    mode = "pure" if PURE else "compiled"
    json.dump({"mode": mode, "before": before, "after": after}, sys.stdout)


if __name__ == "__main__":
    main()
