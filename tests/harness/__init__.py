"""Test harness shared by the black-box, differential, client and durability
suites: server processes (real etcd and ours), gRPC clients, response
normalisation, certificates. Nothing here starts a server on import.
"""
