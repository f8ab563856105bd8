"""The python `etcd3` client against the subject (each scenario in its own
process: see etcd3_driver.py)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("etcd3_driver.py")

# find_spec, not import: etcd3's stubs would clash with ours in this process.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("etcd3") is None, reason="python etcd3 client not installed"
)


def run_scenario(server, scenario: str) -> dict:
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    host, port = server.endpoint.rsplit(":", 1)
    result = subprocess.run(
        [sys.executable, str(DRIVER), host, port, scenario],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_kv(subject_server):
    result = run_scenario(subject_server, "kv")
    assert result == {
        "value": "1",
        "version": 1,
        "prefix": [["/app/a", "1"], ["/app/b", "2"]],
        "deleted": True,
        "missing": None,
        "after_delete_prefix": ["/other"],
    }


def test_transactions(subject_server):
    assert run_scenario(subject_server, "txn") == {
        "first": True,
        "second": False,
        "failure_get": ["new"],
        "k": "new",
        "k2": "x",
    }


def test_watch_prefix_iterator(subject_server):
    assert run_scenario(subject_server, "watch")["events"] == [
        ["PutEvent", "/w/1", "a"],
        ["PutEvent", "/w/2", "c"],
        ["DeleteEvent", "/w/1", ""],
    ]


def test_lease_refresh_and_revoke(subject_server):
    result = run_scenario(subject_server, "lease")
    assert result["granted_ttl"] == 5
    assert result["remaining_ok"]
    assert result["refreshed"] == [5]
    assert result["keys"] == ["/leased"]
    assert result["listed"] in (True, None)
    assert result["after_revoke"] is None


def test_lock(subject_server):
    assert run_scenario(subject_server, "lock") == {
        "first": True,
        "held": True,
        "holders": 1,
        "released": True,
        "second": True,
    }


def test_status_and_members(subject_server):
    result = run_scenario(subject_server, "status")
    assert result["db_size_positive"]
    assert result["leader_is_member"]
    assert result["members"] == 1
