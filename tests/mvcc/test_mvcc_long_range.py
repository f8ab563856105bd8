"""Ranges over hundreds of keys written in an order unlike key order: the
compiled scan fetches their KeyValues in revision order (lmdb_kv.fetch_found)
and must still answer in key order, exactly as a model of the history says,
at every revision, with limits, sorting and txns writing several keys under
one revision (the pure twin runs the same test)."""

import random

from conftest import kv

from k0s_store.mvcc.types import (
    SORT_DESCEND,
    TARGET_MOD,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)

KEYS = [b"k/%04d" % i for i in range(700)]


def _write_history(store, rng: random.Random) -> dict[int, dict[bytes, tuple]]:
    """Random writes; the model: revision -> {key: (value, mod_revision)}."""
    state: dict[bytes, tuple] = {}
    history = {store.revision: dict(state)}
    order = KEYS[:]
    rng.shuffle(order)
    for n, key in enumerate(order * 2):
        roll = rng.random()
        if roll < 0.15:
            group = rng.sample(KEYS, 5)  # one revision, five sub revisions
            ops = tuple(PutRequest(k, b"txn-%d" % n) for k in group)
            rev = store.txn(TxnRequest(success=ops)).revision
            state.update({k: (b"txn-%d" % n, rev) for k in group})
        elif roll < 0.25 and key in state:
            rev = store.delete_range(DeleteRangeRequest(key)).revision
            del state[key]
        else:
            rev = store.put(PutRequest(key, b"v-%d" % n)).revision
            state[key] = (b"v-%d" % n, rev)
        history[rev] = dict(state)
    return history


def _seen(kvs) -> list[tuple]:
    return [(k, (value, mod)) for k, _, mod, _, value, _ in map(kv, kvs)]


def test_long_ranges_match_the_history_at_every_revision(store):
    history = _write_history(store, random.Random(7))
    revisions = sorted(history)
    for rev in [*revisions[:: len(revisions) // 12], revisions[-1]]:
        expected = sorted(history[rev].items())
        result = store.range(RangeRequest(b"k/", b"k0", revision=rev)).result
        assert _seen(result.kvs) == expected and result.count == len(expected)
        limited = store.range(RangeRequest(b"k/", b"k0", revision=rev, limit=300)).result
        assert _seen(limited.kvs) == expected[:300]
        assert limited.more == (len(expected) > 300)
        middle = store.range(RangeRequest(b"k/0100", b"k/0600", revision=rev)).result
        assert _seen(middle.kvs) == [e for e in expected if b"k/0100" <= e[0] < b"k/0600"]
    newest = store.range(
        RangeRequest(b"k/", b"k0", sort_order=SORT_DESCEND, sort_target=TARGET_MOD)
    ).result
    mods = [mod for _, (_, mod) in _seen(newest.kvs)]
    assert mods == sorted(mods, reverse=True) and len(mods) == len(history[revisions[-1]])


def test_a_long_range_written_in_key_order(store):
    """Revisions already in key order: fetched as they come, no sorting."""
    keys = [b"o/%04d" % i for i in range(300)]
    for key in keys:
        store.put(PutRequest(key, b"v-" + key))
    store.put(PutRequest(keys[7], b"again"))  # one out of order
    result = store.range(RangeRequest(b"o/", b"o0")).result
    values = [value for _, _, _, _, value, _ in map(kv, result.kvs)]
    assert values == [b"again" if k == keys[7] else b"v-" + k for k in keys]
    first = store.range(RangeRequest(b"o/", b"o0", revision=store.revision - 1)).result
    assert [value for _, _, _, _, value, _ in map(kv, first.kvs)] == [b"v-" + k for k in keys]
