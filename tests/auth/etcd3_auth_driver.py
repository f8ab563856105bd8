"""Drive the python `etcd3` 0.12 client as a user with a password; print JSON.

Run as a separate process (never imported by pytest): etcd3 ships its own
generated stubs for the same proto packages as ours and needs
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python.

Over TLS (grpc sends the token of etcd3's watcher, a call credential, only
on a secure channel).

Usage: etcd3_auth_driver.py HOST PORT CA CERT KEY USER PASSWORD
"""

import json
import sys

import etcd3
import grpc


def _outcome(call) -> object:
    """The call's result, or the gRPC code and text of its failure."""
    try:
        return call()
    except etcd3.exceptions.Etcd3Exception as exc:
        cause = exc.__context__
        if isinstance(cause, grpc.RpcError):
            return f"{cause.code().name}: {cause.details()}"
        return type(exc).__name__
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"


def main(host: str, port: str, ca: str, cert: str, key: str, user: str, password: str) -> dict:
    try:
        client = etcd3.client(
            host,
            int(port),
            ca_cert=ca,
            cert_cert=cert,
            cert_key=key,
            user=user,
            password=password,
            timeout=10,
        )
    except grpc.RpcError as exc:
        return {"login": f"{exc.code().name}: {exc.details()}"}
    events, cancel = client.watch_prefix("/app/")
    out = {
        "put": _outcome(lambda: client.put("/app/a", "1") and "ok"),
        "put_outside": _outcome(lambda: client.put("/etc/a", "1") and "ok"),
        "get": _outcome(lambda: client.get("/app/a")[0].decode()),
        "get_outside": _outcome(lambda: client.get("/etc/a")[0]),
        "prefix": _outcome(lambda: [m.key.decode() for _, m in client.get_prefix("/app/")]),
    }
    event = next(events)
    out["watched"] = [type(event).__name__, event.key.decode(), event.value.decode()]
    cancel()
    client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:8]), sort_keys=True))
