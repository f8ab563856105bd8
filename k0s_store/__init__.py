"""k0s-store: an etcd v3 compatible datastore over LMDB."""

__version__ = "0.1.0"
