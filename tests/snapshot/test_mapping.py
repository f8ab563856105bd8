"""The import mapping bucket by bucket, on etcd databases built for the purpose:
meta's compaction revisions, leases with and without a checkpointed remaining
TTL, alarms, lease attachments, and the auth buckets."""

import time

from k0s_store.backend import Backend
from k0s_store.core import codec, revindex
from k0s_store.mvcc import Store, index
from k0s_store.mvcc.types import RangeRequest
from k0s_store.proto import auth_pb2, lease_pb2, rpc_pb2
from k0s_store.snapshot import restore as restore_module
from k0s_store.snapshot.bbolt_reader import BoltFile
from k0s_store.snapshot.bbolt_writer import BoltWriter
from k0s_store.snapshot.export import revision_bytes
from k0s_store.snapshot.restore import restore

NOSPACE = rpc_pb2.NOSPACE


def etcd_db(path, *, auth_enabled: bool = False) -> None:
    """An etcd database: /a put at 2 and 3 (with lease 7), /b put at 4 and
    deleted at 5, /c put at 6 with lease 8; compacted at 2."""
    kv = codec.encode_kv
    revisions = [
        (codec.rev_key(3, 0), kv(b"/a", 2, 3, 2, b"a2", 7)),
        (codec.rev_key(4, 0), kv(b"/b", 4, 4, 1, b"b", 0)),
        (codec.rev_key(5, 0, True), kv(b"/b", 0, 0, 0, b"", 0)),
        (codec.rev_key(6, 0), kv(b"/c", 6, 6, 1, b"c", 8)),
    ]
    leases = [
        ((7).to_bytes(8, "big"), lease_pb2.Lease(ID=7, TTL=100).SerializeToString()),
        (
            (8).to_bytes(8, "big"),
            lease_pb2.Lease(ID=8, TTL=100, RemainingTTL=30).SerializeToString(),
        ),
    ]
    buckets = {
        b"key": revisions,
        b"meta": [
            (b"consistent_index", (9).to_bytes(8, "big")),
            (b"finishedCompactRev", revision_bytes(2)),
            (b"scheduledCompactRev", revision_bytes(2)),
        ],
        b"lease": leases,
        b"alarm": [(rpc_pb2.AlarmMember(memberID=5, alarm=NOSPACE).SerializeToString(), b"")],
        b"auth": [
            (b"authEnabled", b"\x01" if auth_enabled else b"\x00"),
            (b"authRevision", (1).to_bytes(8, "big")),
        ],
        b"authUsers": [(b"root", auth_pb2.User(name=b"root", roles=["root"]).SerializeToString())],
        b"members": [(b"5", b'{"id":5}')],
    }
    writer = BoltWriter(
        {name: (lambda items=items: iter(items)) for name, items in buckets.items()}
    )
    with open(path, "wb") as out:
        for page in writer.pages():
            out.write(page)


def test_every_bucket_lands_where_it_belongs(tmp_path):
    etcd_db(tmp_path / "etcd.db")
    with BoltFile(tmp_path / "etcd.db") as bolt:
        summary = restore(bolt, tmp_path / "data")
    assert (summary.revision, summary.compact_revision, summary.revisions, summary.leases) == (
        6,
        2,
        4,
        2,
    )
    assert summary.skipped == ()  # etcd's membership goes by design
    store = Store(tmp_path / "data")
    try:
        assert (store.revision, store.compact_revision) == (6, 2)
        assert (store.auth.user_list(), store.auth.user_get("root")) == (["root"], ["root"])
        assert store.alarms() == [NOSPACE]
        now = store.range(RangeRequest(key=b"/", range_end=b"0"))
        assert [codec.decode_kv(kv)[:2] for kv in now.result.kvs] == [(b"/a", 2), (b"/c", 6)]
        at_4 = store.range(RangeRequest(key=b"/", range_end=b"0", revision=4))
        assert [codec.decode_kv(kv)[0] for kv in at_4.result.kvs] == [b"/a", b"/b"]
        full, checkpointed = (
            store.lease_time_to_live(7, keys=True),
            store.lease_time_to_live(8, keys=True),
        )
        assert (full.granted_ttl, full.keys) == (100, [b"/a"]) and 95 <= full.ttl <= 100
        # A RemainingTTL checkpoint is not kept: the opener gives the full TTL.
        assert (checkpointed.granted_ttl, checkpointed.keys) == (100, [b"/c"])
        assert 95 <= checkpointed.ttl <= 100
    finally:
        store.close()


def test_authentication_enabled_comes_along(tmp_path):
    etcd_db(tmp_path / "etcd.db", auth_enabled=True)
    with BoltFile(tmp_path / "etcd.db") as bolt:
        restore(bolt, tmp_path / "data")
    store = Store(tmp_path / "data")
    try:
        assert store.auth.state.enabled
    finally:
        store.close()


def test_restore_into_an_existing_empty_dir(tmp_path):
    etcd_db(tmp_path / "etcd.db")
    (tmp_path / "data").mkdir()
    started = time.time()
    with BoltFile(tmp_path / "etcd.db") as bolt:
        restore(bolt, tmp_path / "data")
    assert (tmp_path / "data" / "data.mdb").stat().st_mtime >= started - 1


def test_an_empty_etcd_restores_to_revision_one(tmp_path):
    empty = {b"key": [], b"meta": [], b"lease": [], b"members": []}
    writer = BoltWriter({name: (lambda items=items: iter(items)) for name, items in empty.items()})
    (tmp_path / "empty.db").write_bytes(b"".join(writer.pages()))
    with BoltFile(tmp_path / "empty.db") as bolt:
        summary = restore(bolt, tmp_path / "data")
    assert (summary.revision, summary.compact_revision, summary.revisions) == (1, -1, 0)
    store = Store(tmp_path / "data")
    try:
        assert (store.revision, store.compact_revision, store.alarms()) == (1, 0, [])
    finally:
        store.close()


def test_a_long_history_restores_in_bounded_chunks(tmp_path, monkeypatch):
    """A key written 6,000 times (never compacted) among others, restored over
    many batches: its history lands in chunks no larger than writes make, each
    batch appends to the key's entry alone (no chunk is read back), and every
    revision reads as it was written."""
    kv = codec.encode_kv
    hot, revisions, rev = b"/hot", [], 1
    for version in range(1, 6001):
        rev += 1
        revisions.append((codec.rev_key(rev, 0), kv(hot, 2, rev, version, b"v%d" % version, 0)))
        if version % 7 == 0:
            rev += 1
            other = b"/k%d" % version
            revisions.append((codec.rev_key(rev, 0), kv(other, rev, rev, 1, b"o", 0)))
    writer = BoltWriter({b"key": lambda: iter(revisions), b"meta": lambda: iter(())})
    (tmp_path / "etcd.db").write_bytes(b"".join(writer.pages()))
    monkeypatch.setattr(restore_module, "BATCH_ITEMS", 500)
    chunk_reads = []
    monkeypatch.setattr(index, "_chunks", _counting(index._chunks, chunk_reads))
    with BoltFile(tmp_path / "etcd.db") as bolt:
        summary = restore(bolt, tmp_path / "data")
    assert summary.revisions == len(revisions) and chunk_reads == []
    monkeypatch.undo()
    backend = Backend(tmp_path / "data", map_size=1 << 30, sync=False)
    try:
        with backend.read() as txn:
            dbs = backend.dbs
            chunks = [chunk for _, chunk in txn.cursor(db=dbs.index_history).iternext()]
            entry = txn.get(hot, db=dbs.index)
            records = index.get(txn, dbs, hot)
    finally:
        backend.close()
    store = Store(tmp_path / "data")
    try:
        size = revindex.RECORD_SIZE
        assert len(chunks) >= 6000 // revindex.CHUNK_RECORDS
        assert all(len(chunk) <= revindex.CHUNK_RECORDS * size for chunk in chunks)
        assert len(entry) <= revindex.SPLIT_RECORDS * size
        hot_revisions = [
            (codec.parse_rev_key(key)[0], value)
            for key, value in revisions
            if codec.decode_kv(value)[0] == hot
        ]
        assert [main for main, _, _ in revindex.unpack(records)] == [m for m, _ in hot_revisions]
        for main, value in hot_revisions[::97]:
            at = store.range(RangeRequest(key=hot, revision=main))
            assert at.result.kvs == [value]
    finally:
        store.close()


def _counting(fn, calls: list):
    def counted(*args):
        calls.append(args[2])
        return fn(*args)

    return counted
