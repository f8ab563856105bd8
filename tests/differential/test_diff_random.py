"""Differential: a seeded random mix of KV operations, every response compared."""

import random

import pytest

from k0s_store.proto import rpc_pb2

pytestmark = pytest.mark.etcd

KEYS = [b"a", b"b", b"ba", b"bb", b"c", b"d\x00", b"e" * 600]
OPS_PER_RUN = 300


def _key(rng: random.Random) -> bytes:
    return rng.choice(KEYS)


def _range_bounds(rng: random.Random) -> dict:
    start = _key(rng)
    return rng.choice(
        [{}, {"range_end": b"\0"}, {"range_end": start + b"\xff"}, {"range_end": b"c"}]
    )


def _range(rng: random.Random, revision_cap: int) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(
        key=_key(rng),
        revision=rng.choice([0, 0, rng.randint(0, revision_cap + 2)]),
        limit=rng.choice([0, 0, 1, 2]),
        sort_order=rng.randint(0, 2),
        sort_target=rng.randint(0, 4),
        keys_only=rng.random() < 0.2,
        count_only=rng.random() < 0.1,
        **_range_bounds(rng),
    )


def _put(rng: random.Random) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(
        key=_key(rng),
        value=rng.randbytes(rng.randint(0, 20)),
        prev_kv=rng.random() < 0.5,
        ignore_value=rng.random() < 0.05,
    )


def _delete(rng: random.Random) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(
        key=_key(rng), prev_kv=rng.random() < 0.5, **_range_bounds(rng)
    )


def _request_op(rng: random.Random, revision_cap: int) -> rpc_pb2.RequestOp:
    kind = rng.choice(["put", "delete", "range"])
    if kind == "put":
        return rpc_pb2.RequestOp(request_put=_put(rng))
    if kind == "delete":
        return rpc_pb2.RequestOp(request_delete_range=_delete(rng))
    return rpc_pb2.RequestOp(request_range=_range(rng, revision_cap))


def _compare(rng: random.Random) -> rpc_pb2.Compare:
    target = rng.randint(0, 3)  # VERSION, CREATE, MOD, VALUE
    field = ["version", "create_revision", "mod_revision", "value"][target]
    value = rng.choice([b"", b"x"]) if target == 3 else rng.randint(0, 5)
    return rpc_pb2.Compare(key=_key(rng), target=target, result=rng.randint(0, 3), **{field: value})


def _txn(rng: random.Random, revision_cap: int) -> rpc_pb2.TxnRequest:
    def ops():
        return [_request_op(rng, revision_cap) for _ in range(rng.randint(0, 3))]

    compares = [_compare(rng) for _ in range(rng.randint(0, 2))]
    return rpc_pb2.TxnRequest(compare=compares, success=ops(), failure=ops())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_kv_mix(pair, seed):
    """Every response compared; a watcher on all keys sees the same events."""
    watch = pair.watch()
    watch.create(key=b"\0", range_end=b"\0", prev_kv=True)
    watch.expect_same(1)
    try:
        _run_random_ops(pair, random.Random(seed))
        watch.expect_same_drained()
    finally:
        watch.close()


def _run_random_ops(pair, rng: random.Random) -> None:
    revision = 1
    for _ in range(OPS_PER_RUN):
        kind = rng.choices(["put", "delete", "range", "txn", "compact"], [30, 10, 30, 25, 5])[0]
        if kind == "put":
            response = pair.same("KV", "Put", _put(rng))
        elif kind == "delete":
            response = pair.same("KV", "DeleteRange", _delete(rng))
        elif kind == "range":
            response = pair.same("KV", "Range", _range(rng, revision))
        elif kind == "txn":
            response = pair.same("KV", "Txn", _txn(rng, revision))
        else:
            request = rpc_pb2.CompactionRequest(revision=rng.randint(1, revision + 1))
            response = pair.same("KV", "Compact", request)
        if hasattr(response, "header"):
            revision = max(revision, response.header.revision)
