"""Our LMDB binding (src_ext/lmdb.pyx) against py-lmdb, the library it stands in for.

The same seeded operations run on both, each on its own environment, and
every return value and error class must match. (Two different environments
may live in one process; one environment opened twice may not.) Not
compared: append=True in a dupsort DB, where LMDB releases differ.
"""

import os
import random
from functools import partial

import lmdb as py_lmdb
import pytest
from harness.twins import twin

OURS = twin("lmdb", "compiled")
LIBS = pytest.mark.parametrize("lib", [py_lmdb, OURS], ids=["py-lmdb", "ours"])


def _open(lib, path, **kwargs):
    kwargs.setdefault("map_size", 1 << 22)
    return lib.open(str(path), max_dbs=4, sync=False, **kwargs)


def _outcome(fn):
    """What a call gives: its result, or the name of the LMDB error it raises."""
    try:
        result = fn()
    except Exception as exc:
        return ("raised", type(exc).__name__)
    if isinstance(result, list | tuple):
        return [bytes(x) if isinstance(x, memoryview) else x for x in result]
    return result


def _random_key(rng: random.Random) -> bytes:
    return bytes(rng.choice(b"abcd") for _ in range(rng.randint(0, 4)))


# One operation each: f(txn, cursor, key, value, db, plain DB).
_STEPS = [
    lambda t, c, k, v, d, p: t.put(k, v, db=d),
    lambda t, c, k, v, d, p: t.put(k, v, overwrite=False, db=d),
    lambda t, c, k, v, d, p: t.put(k, v, append=True, db=p),
    lambda t, c, k, v, d, p: t.put(k, v, dupdata=False, db=d),
    lambda t, c, k, v, d, p: t.get(k, b"-", db=d),
    lambda t, c, k, v, d, p: t.delete(k, db=d),
    lambda t, c, k, v, d, p: t.delete(k, v, db=d),
    lambda t, c, k, v, d, p: (c.set_range(k), c.item()),
    lambda t, c, k, v, d, p: (c.set_key(k), c.key(), c.value()),
    lambda t, c, k, v, d, p: list(c.iternext())[:5],
    lambda t, c, k, v, d, p: list(c.iterprev(values=False))[:5],
    lambda t, c, k, v, d, p: (c.next(), c.prev(), c.item()),
    lambda t, c, k, v, d, p: (c.first(), c.last(), c.item()),
    lambda t, c, k, v, d, p: list(c.iternext_dup()),
    lambda t, c, k, v, d, p: (c.next_nodup(), c.item(), c.count()),
    lambda t, c, k, v, d, p: (c.set_key_dup(k, v), c.set_range_dup(k, v)),
    lambda t, c, k, v, d, p: (t.replace(k, v, db=d), t.pop(k, db=d)),
    lambda t, c, k, v, d, p: (c.put(k, v), c.item(), c.delete(), c.item()),
]


def _transcript(lib, path, seed: int) -> list:
    """Seeded puts, deletes, gets and cursor walks over a plain and a dupsort DB."""
    rng = random.Random(seed)
    env = _open(lib, path)
    plain, dups = env.open_db(b"plain"), env.open_db(b"dups", dupsort=True)
    out = []
    for _ in range(40):
        txn = env.begin(write=rng.random() < 0.7)
        cursor = txn.cursor(db=rng.choice([plain, dups]))
        for _ in range(rng.randint(1, 30)):
            key, value = _random_key(rng), _random_key(rng)
            db = rng.choice([plain, dups])
            op = rng.randrange(len(_STEPS))
            step = partial(_STEPS[op], txn, cursor, key, value, db, plain)
            out.append((op, _outcome(step)))
        out.append(("stat", sorted(txn.stat(plain).items())))
        if rng.random() < 0.8:
            txn.commit()
        else:
            txn.abort()
    with env.begin() as txn:
        out.append(("all", [list(txn.cursor(db=db)) for db in (plain, dups)]))
    env.close()
    return out


@pytest.mark.parametrize("seed", range(8))
def test_same_results_as_py_lmdb(tmp_path, seed):
    assert _transcript(OURS, tmp_path / "ours", seed) == _transcript(py_lmdb, tmp_path / "py", seed)


def test_files_open_in_the_other_library(tmp_path):
    for writer, reader in ((OURS, py_lmdb), (py_lmdb, OURS)):
        path = tmp_path / writer.__name__
        env = _open(writer, path)
        db = env.open_db(b"named")
        with env.begin(write=True) as txn:
            for i in range(2000):
                txn.put(b"%05d" % i, os.urandom(i % 700), db=db)
            expected = list(txn.cursor(db=db))
        env.close()
        env = _open(reader, path)
        with env.begin() as txn:
            assert list(txn.cursor(db=env.open_db(b"named", txn=txn))) == expected
        env.close()


@LIBS
def test_a_stale_handle_raises_instead_of_crashing(tmp_path, lib):
    env = _open(lib, tmp_path)
    txn = env.begin(write=True)
    cursor = txn.cursor()
    txn.put(b"k", b"v")
    txn.commit()
    with pytest.raises(lib.Error):
        cursor.first()
    with pytest.raises(lib.Error):
        txn.get(b"k")
    txn.abort()  # ending an ended transaction does nothing
    reader = env.begin()
    env.close()
    with pytest.raises(lib.Error):
        reader.get(b"k")
    with pytest.raises(lib.Error):
        env.begin()
    env.close()


@LIBS
def test_map_full_then_grown(tmp_path, lib):
    env = _open(lib, tmp_path, map_size=64 * 1024)
    with pytest.raises(lib.MapFullError), env.begin(write=True) as txn:
        for i in range(100):
            txn.put(b"%03d" % i, b"x" * 2000)
    env.set_mapsize(1 << 20)
    with env.begin(write=True) as txn:
        for i in range(100):
            txn.put(b"%03d" % i, b"x" * 2000)
    assert env.info()["map_size"] == 1 << 20
    with env.begin() as txn:
        assert txn.stat(env.open_db())["entries"] == 100
    env.close()


@LIBS
def test_compacting_copy_and_stats(tmp_path, lib):
    env = _open(lib, tmp_path / "src")
    with env.begin(write=True) as txn:
        for i in range(500):
            txn.put(b"%04d" % i, b"v" * 300)
    with env.begin(write=True) as txn:
        for i in range(0, 500, 2):
            txn.delete(b"%04d" % i)
    os.mkdir(tmp_path / "copy")
    env.copy(str(tmp_path / "copy"), compact=True)
    before = env.info()["last_pgno"]
    env.close()
    copy = _open(lib, tmp_path / "copy")
    assert copy.info()["last_pgno"] < before
    assert copy.stat()["entries"] == 250
    assert copy.stat()["psize"] == 4096
    copy.close()


@LIBS
def test_nested_transactions_and_buffers(tmp_path, lib):
    env = _open(lib, tmp_path)
    with env.begin(write=True) as parent:
        parent.put(b"a", b"1")
        child = env.begin(write=True, parent=parent)
        child.put(b"b", b"2")
        child.abort()
        with env.begin(write=True, parent=parent) as child:
            child.put(b"c", b"3")
    with env.begin(buffers=True) as txn:
        value = txn.get(b"c")
        assert isinstance(value, memoryview) and bytes(value) == b"3"
        assert txn.get(b"b") is None
        assert [bytes(k) for k in txn.cursor().iternext(values=False)] == [b"a", b"c"]
    env.close()
