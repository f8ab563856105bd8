"""etcd's MVCC semantics over LMDB: revisions, key index, txn, compaction,
watch hub, leases, quota and alarms. The service layer uses `Store`."""

from k0s_store.mvcc.store import Store

__all__ = ["Store"]
