"""Leases survive `kill -9`: attached keys stay until expiry, then go."""

import time

from harness.rpc import Client, RpcFailure

from k0s_store.proto import rpc_pb2


def test_leases_survive_kill9(subject_server):
    client = Client(subject_server.channel())
    client.call("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(ID=5, TTL=60))
    client.call("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(ID=6, TTL=2))
    client.call("KV", "Put", rpc_pb2.PutRequest(key=b"long", value=b"1", lease=5))
    client.call("KV", "Put", rpc_pb2.PutRequest(key=b"short", value=b"1", lease=6))
    client.close()
    subject_server.kill9()
    subject_server.start().wait_ready()
    client = Client(subject_server.channel())
    try:
        alive = client.call(
            "Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=5, keys=True)
        )
        assert not isinstance(alive, RpcFailure), alive
        assert 50 <= alive.TTL <= 60 and alive.grantedTTL == 60
        assert list(alive.keys) == [b"long"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            short = client.call("KV", "Range", rpc_pb2.RangeRequest(key=b"short"))
            if short.count == 0:
                break
            time.sleep(0.2)
        assert short.count == 0, "a key of an expired lease survived the restart"
        gone = client.call("Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=6))
        assert gone.TTL == -1
        assert client.call("KV", "Range", rpc_pb2.RangeRequest(key=b"long")).count == 1
    finally:
        client.close()
