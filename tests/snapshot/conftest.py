"""Fixtures of the snapshot tests: servers started on a prepared data dir."""

from pathlib import Path

import pytest
from harness.processes import ServerProcess, etcd_available


@pytest.fixture
def prepared(request: pytest.FixtureRequest, tmp_path: Path):
    """Factory `prepared(kind, name)` -> a ServerProcess not started yet, so a test
    can fill its `data_dir` (a restore) before `start()`; all stopped at teardown."""
    made: list[ServerProcess] = []

    def make(kind: str, name: str) -> ServerProcess:
        if kind == "etcd" and not etcd_available():
            pytest.skip("etcd/etcdctl binaries not installed")
        server = ServerProcess(kind, tmp_path / name)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        for server in made:
            print(f"\n===== {server.kind} log ({server.log_path}) =====\n{server.log_tail(100)}")
