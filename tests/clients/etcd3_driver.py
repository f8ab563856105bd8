"""Drive the python `etcd3` 0.12 client against one endpoint; print JSON.

Run as a separate process (never imported by pytest): etcd3 ships its own
generated stubs for the same proto packages as ours and needs
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python.

Usage: etcd3_driver.py HOST PORT SCENARIO
"""

import json
import sys
import threading
import time

import etcd3


def kv(client: etcd3.Etcd3Client) -> dict:
    client.put("/app/a", "1")
    client.put("/app/b", "2")
    client.put("/other", "3")
    value, meta = client.get("/app/a")
    prefix = sorted((m.key.decode(), v.decode()) for v, m in client.get_prefix("/app/"))
    deleted = client.delete("/app/a")
    missing = client.get("/app/a")[0]
    client.delete_prefix("/app/")
    everything = sorted(m.key.decode() for _, m in client.get_all())
    return {
        "value": value.decode(),
        "version": meta.version,
        "prefix": prefix,
        "deleted": deleted,
        "missing": missing,
        "after_delete_prefix": everything,
    }


def txn(client: etcd3.Etcd3Client) -> dict:
    client.put("k", "v")
    ops = client.transactions
    ok, _ = client.transaction(
        compare=[ops.value("k") == "v", ops.version("k") > 0],
        success=[ops.put("k", "new"), ops.put("k2", "x")],
        failure=[ops.put("k", "failed")],
    )
    failed, responses = client.transaction(
        compare=[ops.value("k") == "v"],
        success=[ops.put("k", "wrong")],
        failure=[ops.get("k")],
    )
    fetched = [value.decode() for value, _ in responses[0]]
    return {
        "first": ok,
        "second": failed,
        "failure_get": fetched,
        "k": client.get("k")[0].decode(),
        "k2": client.get("k2")[0].decode(),
    }


def watch(client: etcd3.Etcd3Client) -> dict:
    events, cancel = client.watch_prefix("/w/")
    seen = []

    def collect() -> None:
        for event in events:
            seen.append([type(event).__name__, event.key.decode(), event.value.decode()])
            if len(seen) == 3:
                break

    reader = threading.Thread(target=collect)
    reader.start()
    time.sleep(0.5)
    client.put("/w/1", "a")
    client.put("/elsewhere", "b")
    client.put("/w/2", "c")
    client.delete("/w/1")
    reader.join(10)
    cancel()
    return {"events": seen}


def lease(client: etcd3.Etcd3Client) -> dict:
    granted = client.lease(5)
    client.put("/leased", "v", lease=granted)
    refreshed = [response.TTL for response in granted.refresh()]
    keys = sorted(key.decode() for key in granted.keys)
    listed = [lease_.id for lease_ in client.get_leases()] if hasattr(client, "get_leases") else []
    result = {
        "granted_ttl": granted.granted_ttl,
        "remaining_ok": 0 < granted.remaining_ttl <= 5,
        "refreshed": refreshed,
        "keys": keys,
        "listed": granted.id in listed if listed else None,
    }
    granted.revoke()
    result["after_revoke"] = client.get("/leased")[0]
    return result


def lock(client: etcd3.Etcd3Client) -> dict:
    # Uncontended only: etcd3 0.12's retry path (a contended acquire) calls
    # tenacity with an old signature and raises TypeError, whatever the server.
    first = client.lock("resource", ttl=10)
    got_first = first.acquire(timeout=5)
    held = first.is_acquired()
    holders = len(list(client.get_prefix("/locks/resource")))
    first.release()
    released = not first.is_acquired()
    with client.lock("resource", ttl=10) as second:
        second_held = second.is_acquired()
    return {
        "first": got_first,
        "held": held,
        "holders": holders,
        "released": released,
        "second": second_held,
    }


def status(client: etcd3.Etcd3Client) -> dict:
    reply = client.status()
    members = list(client.members)
    return {
        "version": reply.version,
        "db_size_positive": reply.db_size > 0,
        "leader_is_member": reply.leader.id in [m.id for m in members],
        "members": len(members),
    }


SCENARIOS = {f.__name__: f for f in (kv, txn, watch, lease, lock, status)}

if __name__ == "__main__":
    host, port, scenario = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    etcd_client = etcd3.client(host=host, port=port, timeout=10)
    print(json.dumps(SCENARIOS[scenario](etcd_client)))
