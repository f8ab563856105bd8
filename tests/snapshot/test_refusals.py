"""Corrupt, truncated and hash-mismatched files are refused in one line, and a
failed restore leaves no data dir behind."""

import hashlib
from pathlib import Path

import pytest
from snapshot_tools import k0s_store, sample_buckets, write_file

from k0s_store.snapshot import bbolt_format as fmt
from k0s_store.snapshot.bbolt_reader import BoltFile
from k0s_store.snapshot.errors import SnapshotError
from k0s_store.snapshot.snapshot_file import open_snapshot

PAGE = 4096


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "plain.db"
    write_file(path, sample_buckets(), PAGE)
    return path


def with_trailer(path: Path, data: bytes) -> Path:
    path.write_bytes(data + hashlib.sha256(data).digest())
    return path


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def refuse(path: Path, match: str, **kwargs) -> None:
    with pytest.raises(SnapshotError, match=match) as info, open_snapshot(path, **kwargs) as bolt:
        for _ in bolt.walk():
            pass
    assert "\n" not in str(info.value)


def test_one_bad_meta_falls_back_to_the_other(db, tmp_path):
    data = db.read_bytes()
    broken = patched(
        data, PAGE + fmt.PAGE_HEADER.size + 20, b"\xff"
    )  # meta 1's checksum no longer fits
    path = with_trailer(tmp_path / "one-meta.db", broken)
    with open_snapshot(path) as bolt:
        assert bolt.meta.txid == 0
        assert sum(1 for _ in bolt.walk()) > 0


def test_both_bad_metas(db, tmp_path):
    data = db.read_bytes()
    for meta_page in (0, 1):
        data = patched(data, meta_page * PAGE + fmt.PAGE_HEADER.size + 20, b"\xff")
    refuse(with_trailer(tmp_path / "metas.db", data), "no valid meta page")


def test_truncated_database(db, tmp_path):
    data = db.read_bytes()[: -PAGE * 3]
    refuse(with_trailer(tmp_path / "short.db", data), "truncated database")


def test_truncated_download_has_no_trailer(db, tmp_path):
    full = with_trailer(tmp_path / "full.db", db.read_bytes()).read_bytes()
    cut = tmp_path / "cut.db"
    cut.write_bytes(full[:-100])
    refuse(cut, "no sha256 trailer")


def test_hash_mismatch(db, tmp_path):
    path = with_trailer(tmp_path / "hash.db", db.read_bytes())
    data = path.read_bytes()
    path.write_bytes(patched(data, 5 * PAGE + 100, bytes([data[5 * PAGE + 100] ^ 1])))
    refuse(path, "sha256 mismatch")


def test_bare_db_needs_skip_hash_check(db):
    refuse(db, "no sha256 trailer")
    with open_snapshot(db, require_hash=False) as bolt:
        assert sum(1 for _ in bolt.walk()) > 0


def _leaf_page(path: Path) -> int:
    with BoltFile(path) as bolt:
        for pgid in range(4, bolt.meta.high_water):
            flags = fmt.PAGE_HEADER.unpack_from(bolt._data, pgid * PAGE)[1]
            if flags & fmt.LEAF_PAGE:
                return pgid
    raise AssertionError("no leaf page")


def test_element_out_of_bounds(db, tmp_path):
    data = db.read_bytes()
    at = _leaf_page(db) * PAGE + fmt.PAGE_HEADER.size
    data = patched(data, at + 4, (10 * PAGE).to_bytes(4, "little"))  # first element's pos
    refuse(with_trailer(tmp_path / "pos.db", data), "out of bounds")


def test_page_with_a_wrong_id(db, tmp_path):
    data = db.read_bytes()
    data = patched(data, _leaf_page(db) * PAGE, (12345).to_bytes(8, "little"))
    refuse(with_trailer(tmp_path / "id.db", data), "says it is page 12345")


def test_keys_out_of_order(db, tmp_path):
    data = db.read_bytes()
    leaf = _leaf_page(db) * PAGE
    _, pos, ksize, _ = fmt.LEAF_ELEMENT.unpack_from(data, leaf + fmt.PAGE_HEADER.size)
    key_at = leaf + fmt.PAGE_HEADER.size + pos
    data = patched(data, key_at, b"\xff" * ksize)
    refuse(with_trailer(tmp_path / "order.db", data), "out of order")


def test_cli_restore_refusals_leave_nothing(db, tmp_path):
    good = with_trailer(tmp_path / "good.db", db.read_bytes())
    corrupt = tmp_path / "corrupt.db"
    data = good.read_bytes()
    corrupt.write_bytes(patched(data, 7 * PAGE, bytes([data[7 * PAGE] ^ 0xFF])))
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(data[: len(data) // 2])
    cases = {
        corrupt: "sha256 mismatch",
        truncated: "no sha256 trailer",
        tmp_path / "missing.db": "cannot read",
        good: "not an etcd snapshot",  # a valid bbolt file without etcd's buckets
    }
    for path, message in cases.items():
        target = tmp_path / f"data-{path.stem}"
        result = k0s_store("snapshot", "restore", path, "--data-dir", target)
        assert result.returncode == 1, (path, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert not target.exists()
        assert not target.with_name(target.name + ".restoring").exists()


def test_cli_restore_refuses_a_non_empty_data_dir(db, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "something").write_text("x")
    result = k0s_store("snapshot", "restore", db, "--data-dir", target, "--skip-hash-check")
    assert result.returncode == 1
    assert result.stderr == f"Error: data dir {target} exists and is not empty\n"
