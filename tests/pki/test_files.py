"""A crash at any point of a key/cert pair write leaves a matching pair after recovery."""

import os

import pytest

from k0s_pki.files import KEY_MODE, PUBLIC_MODE, atomic_write, recover_pair, write_pair


@pytest.mark.parametrize(
    ("staged", "expected"),
    [
        ({"key.next"}, "old"),  # crash after step 1: staging undone
        ({"key.next", "crt.next"}, "new"),  # after step 2: rolled forward
        ({"crt.next"}, "new"),  # after step 3 (key already renamed): rolled forward
    ],
)
def test_recovery_after_crash(tmp_path, staged, expected):
    key, crt = tmp_path / "x.key", tmp_path / "x.crt"
    write_pair(key, crt, b"old key", b"old crt")
    if "key.next" in staged:
        atomic_write(tmp_path / "x.key.next", b"new key", KEY_MODE)
    else:
        key.write_bytes(b"new key")  # step 3 done
    if "crt.next" in staged:
        atomic_write(tmp_path / "x.crt.next", b"new crt", PUBLIC_MODE)
    assert recover_pair(key, crt)
    assert (key.read_bytes(), crt.read_bytes()) == (
        f"{expected} key".encode(),
        f"{expected} crt".encode(),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.crt", "x.key"]
    assert not recover_pair(key, crt)


def test_modes_ignore_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_pair(tmp_path / "a.key", tmp_path / "a.crt", b"k", b"c")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.key").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "a.crt").st_mode & 0o777 == 0o644
