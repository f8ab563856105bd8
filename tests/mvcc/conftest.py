"""Fixtures of the MVCC store tests: a fresh Store in a temporary directory."""

import pytest

from k0s_store.core import codec
from k0s_store.mvcc import Store


@pytest.fixture
def open_store(tmp_path):
    """Factory: open a Store on tmp_path/data (reopenable); all closed at teardown."""
    stores = []

    def open_(**kwargs) -> Store:
        kwargs.setdefault("fsync", False)
        kwargs.setdefault("min_lease_ttl", 1)
        kwargs.setdefault("lease_check_interval", 0.05)
        store = Store(tmp_path / "data", **kwargs)
        stores.append(store)
        return store

    yield open_
    for store in stores:
        store.close()


@pytest.fixture
def store(open_store) -> Store:
    return open_store()


def kv(stored: bytes) -> tuple:
    """(key, create_revision, mod_revision, version, value, lease) of a stored KeyValue."""
    return codec.decode_kv(stored)


def keys(kvs: list[bytes]) -> list[bytes]:
    return [codec.decode_kv(b)[0] for b in kvs]
