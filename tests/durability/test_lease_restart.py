"""Leases across `kill -9`, as etcd's lessor Promote does them: at start every
lease's deadline becomes now + TTL + 1 s, so attached keys stay, and a lease
that ran out while the store was down expires a full TTL after the start."""

import time

from harness.rpc import Client, RpcFailure

from k0s_store.proto import rpc_pb2


def test_leases_survive_kill9_with_their_full_ttl(subject_server):
    client = Client(subject_server.channel())
    client.call("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(ID=5, TTL=60))
    client.call("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(ID=6, TTL=2))
    client.call("KV", "Put", rpc_pb2.PutRequest(key=b"long", value=b"1", lease=5))
    client.call("KV", "Put", rpc_pb2.PutRequest(key=b"short", value=b"1", lease=6))
    client.close()
    subject_server.kill9()
    time.sleep(2.5)  # lease 6 runs out while the store is down
    subject_server.start().wait_ready()
    started = time.monotonic()
    client = Client(subject_server.channel())
    try:
        alive = client.call(
            "Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=5, keys=True)
        )
        assert not isinstance(alive, RpcFailure), alive
        assert 58 <= alive.TTL <= 60 and alive.grantedTTL == 60
        assert list(alive.keys) == [b"long"]
        refreshed = client.call(
            "Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=6, keys=True)
        )
        assert refreshed.TTL >= 1 and list(refreshed.keys) == [b"short"], refreshed
        assert client.call("KV", "Range", rpc_pb2.RangeRequest(key=b"short")).count == 1
        while time.monotonic() < started + 10:
            short = client.call("KV", "Range", rpc_pb2.RangeRequest(key=b"short"))
            if short.count == 0:
                break
            time.sleep(0.2)
        assert short.count == 0, "a key of a lease nobody renewed outlived its refreshed TTL"
        assert time.monotonic() - started >= 1.5, "the lease expired before its refreshed TTL"
        gone = client.call("Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=6))
        assert gone.TTL == -1
        assert client.call("KV", "Range", rpc_pb2.RangeRequest(key=b"long")).count == 1
    finally:
        client.close()
