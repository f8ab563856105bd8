"""Fuzz k0s-store with atheris (coverage-guided, libFuzzer underneath).

    .venv/bin/python bench/fuzz.py codec [libFuzzer flags]
    .venv/bin/python bench/fuzz.py requests --data-dir DIR [libFuzzer flags]

e.g. `-max_total_time=600` for a long run, `-runs=N`, `-seed=S`; a failing
input is saved as `crash-*` (under `-artifact_prefix=DIR/`) and replays with
`bench/fuzz.py TARGET --data-dir ... crash-file`. The suite runs each target
for a few seconds (tests/robustness/test_fuzz.py).

Targets:
- codec: the wire codec (`k0s_store.core.codec`, compiled or pure) against
  etcd's own rules. A body must be refused exactly when gogoproto's
  generated Unmarshal refuses it (etcd decodes with it; walked by
  `k0s_store.api.unmarshal_errors`), and when accepted, decode to what the
  protobuf library reads (where it reads it: it refuses some bodies gogoproto
  takes, such as mismatched group tags in an unknown field); a decoded
  KeyValue encodes back to the bytes the protobuf library makes of the same
  fields, and without its value to the same fields minus the value.
- requests: the request path below the transport: the first byte picks a
  method of `method_table`, the rest is its request body, handled over a
  Store in DIR as the transport would. The answer must be an EtcdError or a
  response that parses; every CHECK_EVERY inputs the store must be
  consistent (HashKV stable at a revision, revisions never going back, every
  stored key readable); the last consistent (revision, hash) is appended to
  DIR/checkpoints so a test can reopen the store after the run and compare.
"""

import argparse
import sys
from pathlib import Path

import atheris
from google.protobuf.message import DecodeError, Message

# Coverage for our code only: instrumenting protobuf and the standard library
# costs seconds at every start and guides nothing.
with atheris.instrument_imports(include=["k0s_store"]):
    from k0s_store.api.methods import Caller, Shape, build_services, method_table
    from k0s_store.api.settings import Settings
    from k0s_store.api.unmarshal_errors import gogo_unmarshal_error, parse
    from k0s_store.core import codec
    from k0s_store.errors import EtcdError
    from k0s_store.mvcc import Store
    from k0s_store.mvcc.types import RangeRequest
    from k0s_store.proto import kv_pb2, rpc_pb2

CHECK_EVERY = 200

# Decoder, message class, field names in the decoded tuple's order.
CODEC_TARGETS = [
    (
        codec.decode_kv,
        kv_pb2.KeyValue,
        ("key", "create_revision", "mod_revision", "version", "value", "lease"),
    ),
    (
        codec.decode_range_request,
        rpc_pb2.RangeRequest,
        tuple(f.name for f in rpc_pb2.RangeRequest.DESCRIPTOR.fields),
    ),
    (
        codec.decode_put_request,
        rpc_pb2.PutRequest,
        ("key", "value", "lease", "prev_kv", "ignore_value", "ignore_lease"),
    ),
    (
        codec.decode_delete_range_request,
        rpc_pb2.DeleteRangeRequest,
        ("key", "range_end", "prev_kv"),
    ),
]

# Raw-bytes KV handlers answer bytes: the message they must parse as.
RAW_RESPONSES = {
    "Range": rpc_pb2.RangeResponse,
    "Put": rpc_pb2.PutResponse,
    "DeleteRange": rpc_pb2.DeleteRangeResponse,
    "Txn": rpc_pb2.TxnResponse,
}


KNOWN_DIVERGENCES = {"malformed group": 0}


def _known(kind: str, data: bytes) -> None:
    """Count a known divergence; say so the first time (libFuzzer's exit skips atexit)."""
    if not KNOWN_DIVERGENCES[kind]:
        print(f"known divergence {kind!r}, first input {data!r}", file=sys.stderr, flush=True)
    KNOWN_DIVERGENCES[kind] += 1


def _upb_parses(message_type, data: bytes) -> bool:
    try:
        message_type.FromString(data)
    except DecodeError:
        return False
    return True


def check_codec(data: bytes) -> None:
    """One input through every decoder; raises AssertionError on a difference."""
    for decode, message_type, names in CODEC_TARGETS:
        try:
            ours = decode(data)
        except ValueError:
            ours = None
        refusal = gogo_unmarshal_error(message_type.DESCRIPTOR, data)
        what = message_type.DESCRIPTOR.name
        if ours is None and refusal is None and not _upb_parses(message_type, data):
            # gogoproto skips a group without checking its tags; upb and ours refuse.
            _known("malformed group", data)
            continue
        if ours is None or refusal is not None:
            assert ours is None and refusal is not None, (
                f"{what}: ours {'refused' if ours is None else 'accepted'}, "
                f"gogoproto {refusal or 'accepted'}: {data!r}"
            )
            continue
        try:
            reference = message_type.FromString(data)
        except DecodeError:
            continue  # e.g. mismatched group tags: gogoproto skips them, upb refuses
        expected = tuple(getattr(reference, name) for name in names)
        assert tuple(ours) == expected, f"{what}: {ours} != {expected} for {data!r}"
        if message_type is kv_pb2.KeyValue:
            rebuilt = kv_pb2.KeyValue(**dict(zip(names, ours, strict=True)))  # no unknown fields
            assert codec.encode_kv(*ours) == rebuilt.SerializeToString(deterministic=True), data
            stripped = codec.decode_kv(codec.kv_without_value(data))
            assert stripped == (*ours[:4], b"", ours[5]), (stripped, ours)


class RequestFuzzer:
    """The services over one Store, fed arbitrary method bodies."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.store = Store(data_dir, fsync=False, lease_check_interval=0.2)
        table = method_table(build_services(self.store, Settings()))
        self.methods = [m for m in table.values() if m.shape in (Shape.UNARY, Shape.EACH_MESSAGE)]
        self.inputs = 0
        self.last_revision = self.store.revision

    def handle(self, data: bytes) -> None:
        if not data:
            return
        method = self.methods[data[0] % len(self.methods)]
        body = data[1:]
        try:
            request = parse(method.request_type, body) if method.request_type else body
            if method.wants_caller:
                answer = method.handler(request, caller=Caller())
            else:
                answer = method.handler(request)
        except EtcdError:
            answer = None
        if isinstance(answer, bytes):
            RAW_RESPONSES[method.name].FromString(answer)  # a valid message
        elif answer is not None:
            assert isinstance(answer, Message), (method.name, type(answer))
        self.inputs += 1
        if self.inputs % CHECK_EVERY == 0:
            self.check_consistency()

    def check_consistency(self) -> None:
        """HashKV stable, revision monotonic, every stored key readable."""
        revision = self.store.revision
        assert revision >= self.last_revision, (revision, self.last_revision)
        self.last_revision = revision
        every = self.store.range(RangeRequest(b"\0", b"\0"))
        for stored in every.result.kvs:
            codec.decode_kv(stored)
        if revision <= self.store.compact_revision:
            return  # compacted at the head: HashKV there is ErrCompacted, as in etcd
        # (hash, compact revision): the header revision moves when the lease
        # checker revokes a lease with keys between the two calls
        first = self.store.hash_kv(revision)[:2]
        assert self.store.hash_kv(revision)[:2] == first
        with open(self.data_dir / "checkpoints", "a") as out:
            out.write(f"{revision} {first[0]}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=["codec", "requests"])
    parser.add_argument("--data-dir", type=Path, help="the store's directory (requests)")
    args, fuzzer_args = parser.parse_known_args()
    if args.target == "codec":
        target = check_codec

    else:
        if args.data_dir is None:
            parser.error("requests needs --data-dir")
        target = RequestFuzzer(args.data_dir).handle
    atheris.Setup([sys.argv[0], *fuzzer_args], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
