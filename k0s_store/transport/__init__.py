"""Transports carrying etcd's gRPC API to the services in `k0s_store.api`."""
