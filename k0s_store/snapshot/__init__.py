"""Backups and moves between k0s-store and etcd, in etcd's own snapshot format.

- bbolt_format, bbolt_writer, bbolt_reader: bbolt's file format, written as a
  stream of pages and read back with every page checked.
- export: our LMDB DBs as etcd 3.4's buckets; restore: the other way.
- stream: etcd's Maintenance.Snapshot messages; snapshot_file: the sha256
  trailer of a saved snapshot.
- commands: the `k0s-store snapshot save|restore` and `import` commands.
"""

from k0s_store.snapshot.bbolt_writer import BoltWriter
from k0s_store.snapshot.errors import SnapshotError
from k0s_store.snapshot.export import Member, etcd_buckets

__all__ = ["BoltWriter", "Member", "SnapshotError", "snapshot_writer"]


def snapshot_writer(view, member: Member) -> BoltWriter:
    """The etcd snapshot file of the store state `view` (a k0s_store.mvcc ReadView,
    open while the file is written)."""
    return BoltWriter(etcd_buckets(view.txn, view.dbs, member))
