"""Generated etcd v3 protobuf and gRPC stubs (built from the .proto files here by setup.py)."""
