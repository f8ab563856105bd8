"""The LMDB environment under the MVCC store and its named DBs."""

from k0s_store.backend.lmdb_env import Backend, Databases

__all__ = ["Backend", "Databases"]
