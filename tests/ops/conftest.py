"""Fixtures of the ops tests: an in-process store (no server)."""

import pytest

from k0s_store.mvcc import Store


@pytest.fixture
def store(tmp_path):
    """A fresh Store on tmp_path/data, closed at teardown."""
    opened = Store(tmp_path / "data", fsync=False)
    yield opened
    opened.close()
