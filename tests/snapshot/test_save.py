"""`k0s-store snapshot save` over mutual TLS, and its one-line failures."""

from harness.rpc import Client
from snapshot_history import put
from snapshot_tools import k0s_store

from k0s_store.core import codec
from k0s_store.snapshot.snapshot_file import open_snapshot


def test_save_over_mutual_tls(servers, tls_files, tmp_path):
    server = servers("ours", tls=tls_files).wait_ready()
    client = Client(server.channel())
    for i in range(20):
        put(client, b"/tls/%02d" % i, b"v%d" % i)
    client.close()
    path = tmp_path / "tls.db"
    tls = ["--cacert", tls_files.ca, "--cert", tls_files.client_cert, "--key", tls_files.client_key]
    saved = k0s_store("snapshot", "save", path, "--endpoints", server.url, *tls)
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout == f"Snapshot saved at {path}\n"
    with open_snapshot(path) as bolt:
        keys = [codec.decode_kv(value)[0] for _, value in bolt.items(b"key")]
    assert keys == [b"/tls/%02d" % i for i in range(20)]

    refused = k0s_store("snapshot", "save", tmp_path / "no.db", "--endpoints", server.url)
    assert refused.returncode == 1
    # Ours is the last line (gRPC's core may log the failed handshake before it).
    errors = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [refused.stderr.splitlines()[-1]]
    assert errors[0].startswith(f"Error: snapshot from {server.url} failed:")
    assert not (tmp_path / "no.db").exists() and not (tmp_path / "no.db.part").exists()
