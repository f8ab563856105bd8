"""etcd's gRPC services, independent of the transport.

One module per service. Hot RPCs take and return marshalled bytes; the rest
take and return generated protobuf messages. Failures are raised as
`k0s_store.errors.EtcdError`; the transport turns them into gRPC statuses.
"""
