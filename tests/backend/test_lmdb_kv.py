"""The key-index reads (lmdb_kv) on both twins against a model, over a real
LMDB environment opened with our binding (the compiled twin reads through
LMDB's C API with its transactions; the pure one through its Python API).

The index holds short keys, long keys sharing a group, keys deleted and
recreated, a key whose older records are in history chunks, and enough keys
that a full scan outlives the part read with the GIL held.
"""

import itertools
import random

import pytest
from harness.twins import twin, twin_fixture

from k0s_store.pure import codec, revindex

ours = twin("lmdb", "compiled")
lmdb_kv = twin_fixture("lmdb_kv")

LONG = b"/long/" + b"g" * 500  # past SHORT_KEY_MAX: one index group
HOT = b"/hot"  # revisions HOT_FIRST.., in two history chunks and a marked entry
HOT_FIRST, HOT_CHUNKS, HOT_LAST = 3000, (4000, 5500), 5999


def _history(seed: int) -> dict[bytes, list[tuple[int, int, bool]]]:
    """user key -> its records (main, sub, tombstone), revisions 2..."""
    rng = random.Random(seed)
    keys = [b"/k/%04d" % i for i in range(700)] + [LONG + b"%d" % i for i in range(12)]
    keys += [b"/k/0001" + b"x" * 474 + b"%d" % i for i in range(3)]  # 482 bytes: long, own group
    history: dict[bytes, list] = {key: [] for key in keys}
    for main in range(2, 2600):
        key = rng.choice(keys)
        records = history[key]
        deleted = bool(records) and not records[-1][2] and rng.random() < 0.25
        records.append((main, 0, deleted))
    history[HOT] = [(main, 0, main % 97 == 0) for main in range(HOT_FIRST, HOT_LAST + 1)]
    return {key: records for key, records in history.items() if records}


def _marked(records: bytes) -> bytes:
    return records[:16] + bytes([records[16] | revindex.HISTORY_MARK]) + records[17:]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(env, index DB, key DB, history DB, history) of a seeded history written raw."""
    history = _history(7)
    env = ours.open(str(tmp_path_factory.mktemp("kv")), map_size=1 << 26, max_dbs=3, sync=False)
    index_db, key_db = env.open_db(b"index"), env.open_db(b"key")
    history_db = env.open_db(b"index_history")
    groups: dict[bytes, list] = {}
    with env.begin(write=True) as txn:
        for key, records in history.items():
            packed = revindex.pack(records)
            if len(key) > 480:
                groups.setdefault(key[:480] + b"\0", []).append((key, packed))
            elif key == HOT:
                bounds = [HOT_FIRST, *HOT_CHUNKS]
                for first, end in itertools.pairwise(bounds):
                    chunk = revindex.pack([r for r in records if first <= r[0] < end])
                    txn.put(codec_history_key(key, first), chunk, db=history_db)
                entry = revindex.pack([r for r in records if r[0] >= HOT_CHUNKS[-1]])
                txn.put(key, _marked(entry), db=index_db)
            else:
                txn.put(key, packed, db=index_db)
            for main, sub, deleted in records:
                kv = codec.encode_kv(key, 0, main, 0, b"" if deleted else b"v%d" % main, 0)
                txn.put(codec.rev_key(main, sub, deleted), kv, db=key_db)
        for group_key, entries in groups.items():
            txn.put(group_key, revindex.encode_group(sorted(entries)), db=index_db)
    yield env, index_db, key_db, history_db, history
    env.close()


def codec_history_key(key: bytes, main: int) -> bytes:
    return len(key).to_bytes(2, "big") + key + main.to_bytes(8, "big")


def _expected(history, key, end, rev, limit, fetch):
    live = []
    for user_key in sorted(history):
        if user_key < key or (end and user_key >= end):
            continue
        at = [r for r in history[user_key] if r[0] <= rev]
        if at and not at[-1][2]:
            live.append(codec.encode_kv(user_key, 0, at[-1][0], 0, b"v%d" % at[-1][0], 0))
    found = live[:limit] if limit else live
    return (found if fetch else []), len(live)


@pytest.mark.parametrize(
    ("key", "end"),
    [
        (b"\0", b""),
        (b"", b""),
        (b"/k/0100", b"/k/0200"),
        (b"/k/0001", b"/k/0002"),
        (LONG, b"/long0"),
        (LONG + b"5", b""),
        (b"/k/0699", b"/long/"),
        (b"/z", b""),
    ],
)
@pytest.mark.parametrize("rev", [1, 40, 1300, 2600, 3500, 4365, 5499, 5500, 6000])
def test_range_live_matches_the_model(store, lmdb_kv, key, end, rev):
    env, index_db, key_db, history_db, history = store
    with env.begin() as txn:
        for limit, fetch in ((0, True), (3, True), (500, True), (0, False)):
            got = lmdb_kv.range_live(txn, index_db, key_db, history_db, key, end, rev, limit, fetch)
            assert got == _expected(history, key, end, rev, limit, fetch), (limit, fetch)
        kvs, count = lmdb_kv.range_live(
            txn, index_db, key_db, history_db, key, end, rev, 0, True, True
        )
        expected, expected_count = _expected(history, key, end, rev, 0, True)
        assert (kvs, count) == ([codec.kv_without_value(kv) for kv in expected], expected_count)


@pytest.mark.parametrize(
    ("key", "end"),
    [
        (b"", b""),
        (b"/k/0100", b"/k/0200"),
        (LONG, b"/long0"),
        (b"/z", b""),
        (b"/k/0005", None),
        (HOT, None),
    ],
)
@pytest.mark.parametrize("rev", [1, 1300, 2600, 3001, 4000, 5555])
def test_range_response_is_the_encoded_range(store, lmdb_kv, key, end, rev):
    env, index_db, key_db, history_db, history = store
    header = codec.encode_header(1, 2, rev, 3)
    with env.begin() as txn:
        for limit in (0, 1, 3, 500, 5000):
            got = lmdb_kv.range_response(
                txn, index_db, key_db, history_db, header, key, end, rev, limit
            )
            kvs, count = _expected(
                history, key, key + b"\0" if end is None else end, rev, limit, True
            )
            expected = codec.encode_range_response(header, kvs, 0 < limit < count, count)
            assert got == expected, limit


def test_single_keys_and_records(store, lmdb_kv):
    env, index_db, key_db, history_db, history = store
    with env.begin() as txn:
        for key, records in history.items():
            if key != HOT:  # its entry holds its newest records only
                assert lmdb_kv.index_records(txn, index_db, key) == revindex.pack(records)
            for rev in (records[0][0] - 1, records[-1][0], 2600):
                expected = _expected(history, key, key + b"\0", rev, 0, True)[0]
                assert lmdb_kv.get_live(txn, index_db, key_db, history_db, key, rev) == (
                    expected[0] if expected else None
                )
        for missing in (b"/k/x", LONG + b"x", b"/k/0001" + b"y" * 500, b"/hos", b"/hot0"):
            assert lmdb_kv.index_records(txn, index_db, missing) is None
            assert lmdb_kv.get_live(txn, index_db, key_db, history_db, missing, 6000) is None


def test_old_revisions_of_a_key_come_from_its_history_chunks(store, lmdb_kv):
    env, index_db, key_db, history_db, history = store
    assert lmdb_kv.history_key(HOT, HOT_FIRST) == codec_history_key(HOT, HOT_FIRST)
    with pytest.raises(ValueError):  # a long key's records stay in its group entry
        lmdb_kv.history_key(LONG + b"x", HOT_FIRST)
    with env.begin() as txn:
        for rev in range(HOT_FIRST - 2, HOT_LAST + 3, 7):
            expected = _expected(history, HOT, HOT + b"\0", rev, 0, True)[0]
            got = lmdb_kv.get_live(txn, index_db, key_db, history_db, HOT, rev)
            assert got == (expected[0] if expected else None), rev


def test_reads_see_the_write_transaction_and_refuse_an_ended_one(store, lmdb_kv):
    env, index_db, key_db, history_db, _ = store
    txn = env.begin(write=True)
    try:
        txn.put(b"/new", revindex.record(9000, 0), db=index_db)
        txn.put(codec.rev_key(9000, 0), b"stored", db=key_db)
        assert lmdb_kv.get_live(txn, index_db, key_db, history_db, b"/new", 9000) == b"stored"
        assert lmdb_kv.range_live(
            txn, index_db, key_db, history_db, b"/n", b"/o", 9000, 0, True
        ) == ([b"stored"], 1)
    finally:
        txn.abort()
    with pytest.raises(ours.Error):
        lmdb_kv.get_live(txn, index_db, key_db, history_db, b"/new", 9000)


def _write_transcript(kv_module, path, seed: int) -> tuple[list, list, list]:
    """Seeded put_revision/tombstone calls on a fresh environment: (what
    each call returned, the whole index DB, the whole key DB)."""
    rng = random.Random(seed)
    keys = [b"/w/%d" % i for i in range(6)] + [LONG + b"%d" % i for i in range(4)]
    env = ours.open(str(path), map_size=1 << 25, max_dbs=3, sync=False)
    index_db, key_db = env.open_db(b"index"), env.open_db(b"key")
    history_db = env.open_db(b"index_history")
    returned = []
    with env.begin(write=True) as txn:
        for main in range(2, 2000):
            key = HOT if rng.random() < 0.8 else rng.choice(keys)  # HOT passes 2 splits
            for sub in range(rng.randint(1, 2)):
                if rng.random() < 0.3:
                    returned.append(
                        kv_module.tombstone(txn, index_db, key_db, history_db, key, main, sub)
                    )
                else:
                    value, lease = rng.randbytes(rng.choice([0, 5, 600])), rng.choice([0, 7])
                    ignore_value, ignore_lease = rng.random() < 0.2, rng.random() < 0.2
                    returned.append(
                        kv_module.put_revision(
                            txn,
                            index_db,
                            key_db,
                            history_db,
                            key,
                            value,
                            lease,
                            main,
                            sub,
                            ignore_value,
                            ignore_lease,
                        )
                    )
    with env.begin() as txn:
        dumps = [list(txn.cursor(db=db)) for db in (index_db, key_db, history_db)]
    env.close()
    return returned, *dumps


@pytest.mark.parametrize("seed", range(3))
def test_writes_are_the_same_on_both_twins(tmp_path, seed):
    compiled, pure = twin("lmdb_kv", "compiled"), twin("lmdb_kv", "pure")
    got = _write_transcript(compiled, tmp_path / "compiled", seed)
    assert got == _write_transcript(pure, tmp_path / "pure", seed)
    returned, index_items, _, history_items = got
    assert None in returned  # refused ignore flags and deleted keys were exercised
    assert any(len(k) == 481 for k, _ in index_items)  # and a long-key group
    assert len(history_items) >= 2  # and history chunks
    entries = []
    for db_key, value in index_items:
        entries += revindex.decode_group(value) if len(db_key) == 481 else [(db_key, value)]
    hot_entry = dict(entries)[HOT]
    assert len(hot_entry) <= revindex.SPLIT_RECORDS * revindex.RECORD_SIZE
    assert hot_entry[16] & revindex.HISTORY_MARK
    entries.append((HOT, b"".join(chunk for _, chunk in history_items) + hot_entry))
    for _, records in entries:  # every key's records in revision order
        revisions = [r[:2] for r in revindex.unpack(records)]
        assert revisions == sorted(revisions)
