"""A load process for the durability test: put keys as fast as possible and
record every acknowledged (key, revision), until the server goes away.

Usage: writer.py ENDPOINT PREFIX OUTFILE
Each acknowledged write is one line `key revision` in OUTFILE, written and
flushed right after the acknowledgement (this process is not the one killed).
"""

import sys

import grpc

from k0s_store.proto import rpc_pb2, rpc_pb2_grpc


def main(endpoint: str, prefix: str, outfile: str) -> None:
    with grpc.insecure_channel(endpoint) as channel, open(outfile, "w") as out:
        kv = rpc_pb2_grpc.KVStub(channel)
        number = 0
        while True:
            key = f"{prefix}/{number:08d}"
            try:
                response = kv.Put(rpc_pb2.PutRequest(key=key.encode(), value=b"x" * 64), timeout=5)
            except grpc.RpcError:
                return  # the server was killed: stop
            out.write(f"{key} {response.header.revision}\n")
            out.flush()
            number += 1


if __name__ == "__main__":
    main(*sys.argv[1:4])
