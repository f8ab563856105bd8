"""HashKV: etcd's crc32c (Castagnoli) over the `key` DB (mvcc/kvstore.go HashByRev).

The hash covers the bucket name b"key", then every (revision key, value)
with main revision <= rev, skipping revisions at or below the compact
revision that a compaction at rev would not keep. The same history gives
the same hash as etcd.
"""

from k0s_store.core import codec, crc
from k0s_store.mvcc import index, key_index
from k0s_store.mvcc.kv_read import ReadView

_BUCKET = b"key"


def hash_by_rev(view: ReadView, rev: int) -> int:
    """The crc32c of the store at `rev` (already checked against compaction)."""
    txn, dbs = view.txn, view.dbs
    keep: set[tuple[int, int]] = set()
    for _, records in index.scan(txn, dbs, b"\0", b""):
        keep |= key_index.keep(records, rev)
    lower = view.compact_rev + 1
    checksum = crc.crc32c(_BUCKET)
    for rk, value in txn.cursor(db=dbs.key):
        main, sub, _ = codec.parse_rev_key(rk)
        if main > rev:
            break
        if main < lower and keep and (main, sub) not in keep:
            continue
        checksum = crc.crc32c(value, crc.crc32c(rk, checksum))
    return checksum
