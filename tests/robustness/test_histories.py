"""Recorded histories against real etcd and ours: linearizable, watches valid."""

import pytest
from kvhistory.runner import run_and_check


@pytest.mark.parametrize("kind", ["etcd", "ours"])
def test_history_without_faults(servers, tmp_path, kind):
    server = servers(kind).wait_ready()
    report = run_and_check(server, tmp_path / "run", seconds=4.0)
    print(f"\n{kind}: {report.summary()}")
    assert not report.violations, "\n".join(str(v) for v in report.violations[:5])
    assert report.answered > 100 and report.watch_events > 50
