"""Wire codec speed: pure twin vs compiled module vs the protobuf classes.

Run: .venv/bin/python bench/codec_bench.py [--repeat N]

Cases:
- encoding a RangeResponse of 1000 stored KeyValues (20-byte keys, 256-byte
  values); the codecs take the stored KeyValue bytes as they are, protobuf
  has to parse them into messages first (what a protobuf-based server does
  per key), reported both with and without that parse;
- decoding a typical RangeRequest (prefix list with limit and revision);
- encoding one KeyValue, and one WatchResponse with one event.

Prints the time per call and the speed-up of the compiled module over the
others.
"""

import argparse
import timeit

from k0s_store._ext import codec as compiled
from k0s_store.proto import kv_pb2, rpc_pb2
from k0s_store.pure import codec as pure

N_KEYS = 1000


def best_per_call(fn, repeat: int) -> float:
    """Best-of-`repeat` seconds per call of fn, timing enough calls for ~0.2 s a round."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number


def range_response_cases(codec) -> dict:
    stored = [
        codec.encode_kv(b"/registry/pods/%06d" % i, 1000 + i, 2000 + i, 3, b"v" * 256, 0)
        for i in range(N_KEYS)
    ]
    header = codec.encode_header(0x1234, 0x5678, 5000, 7)
    return {
        "stored": stored,
        "header": header,
        "range": lambda: codec.encode_range_response(header, stored, True, 123456),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timing rounds (best is kept)")
    args = parser.parse_args()

    cases = range_response_cases(compiled)
    stored, header_bytes = cases["stored"], cases["header"]
    header_pb = rpc_pb2.ResponseHeader()
    header_pb.ParseFromString(header_bytes)
    parsed_kvs = [kv_pb2.KeyValue.FromString(kv) for kv in stored]

    def protobuf_range_with_parse() -> bytes:
        kvs = [kv_pb2.KeyValue.FromString(kv) for kv in stored]
        return rpc_pb2.RangeResponse(
            header=header_pb, kvs=kvs, more=True, count=123456
        ).SerializeToString()

    def protobuf_range_prebuilt() -> bytes:
        return rpc_pb2.RangeResponse(
            header=header_pb, kvs=parsed_kvs, more=True, count=123456
        ).SerializeToString()

    request = rpc_pb2.RangeRequest(
        key=b"/registry/pods/", range_end=b"/registry/pods0", limit=500, revision=4999
    ).SerializeToString()
    kv_args = (b"/registry/pods/default/x", 1000, 2000, 3, b"v" * 256, 0)
    event = compiled.encode_event(0, stored[0], None)

    rows = {
        f"encode RangeResponse ({N_KEYS} kvs)": {
            "pure": range_response_cases(pure)["range"],
            "compiled": cases["range"],
            "protobuf (parse stored kvs + serialize)": protobuf_range_with_parse,
            "protobuf (prebuilt messages, serialize)": protobuf_range_prebuilt,
        },
        "decode RangeRequest": {
            "pure": lambda: pure.decode_range_request(request),
            "compiled": lambda: compiled.decode_range_request(request),
            "protobuf": lambda: rpc_pb2.RangeRequest.FromString(request),
        },
        "encode KeyValue": {
            "pure": lambda: pure.encode_kv(*kv_args),
            "compiled": lambda: compiled.encode_kv(*kv_args),
            "protobuf": lambda: kv_pb2.KeyValue(
                key=kv_args[0],
                create_revision=kv_args[1],
                mod_revision=kv_args[2],
                version=kv_args[3],
                value=kv_args[4],
            ).SerializeToString(),
        },
        "encode WatchResponse (1 event)": {
            "pure": lambda: pure.encode_watch_response(
                header_bytes, 1, False, False, 0, "", False, [event]
            ),
            "compiled": lambda: compiled.encode_watch_response(
                header_bytes, 1, False, False, 0, "", False, [event]
            ),
            "protobuf": lambda: rpc_pb2.WatchResponse(
                header=header_pb, watch_id=1, events=[kv_pb2.Event.FromString(event)]
            ).SerializeToString(),
        },
    }

    for case, impls in rows.items():
        results = {name: impl() for name, impl in impls.items()}
        same = (
            results.values()
            if case.startswith("encode")
            else [results["pure"], results["compiled"]]
        )
        assert len(set(same)) == 1, f"{case}: the implementations disagree"
        timings = {name: best_per_call(impl, args.repeat) for name, impl in impls.items()}
        print(f"{case}:")
        for name, seconds in timings.items():
            ratio = seconds / timings["compiled"]
            print(f"  {name:42s} {seconds * 1e6:10.2f} µs   {ratio:6.1f}x compiled")


if __name__ == "__main__":
    main()
