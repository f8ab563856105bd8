"""Fixtures shared by the whole suite; none is autouse and none starts a
server unless a test asks for it.

- `servers`: a factory of server processes (real etcd or ours), all stopped
  at teardown; their logs are printed when the test failed.
- `etcd_server`, `subject_server`: one ready server each.
- `pair`: a fresh real etcd and a fresh subject started together, with
  clients (`harness.differential.Pair`).
- `@pytest.mark.server_args("--flag=value", ...)` passes flags to the servers
  those fixtures start.

`K0S_DIFF_AGAINST=etcd` makes the subject a second real etcd: the harness
checks itself.
"""

import signal
import sys
from pathlib import Path

import pytest

# The harness package lives beside this file; test directories have no
# __init__.py, so make `import harness` work whatever the rootdir mode.
sys.path.insert(0, str(Path(__file__).parent))

from harness.certs import TLSFiles, make_tls_files
from harness.differential import Pair
from harness.processes import ServerProcess, etcd_available, subject_kind
from harness.rpc import Client


def pytest_configure(config: pytest.Config) -> None:
    # A background job of a non-interactive shell starts with SIGINT ignored,
    # and children inherit that: etcdctl watch and keep-alive, which the tests
    # stop with SIGINT, would then run on. A Python handler resets on exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line("markers", "server_args(*flags): extra flags for fixture servers")
    config.addinivalue_line("markers", "slow: a long run (e.g. 60 s etcdctl check perf)")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(node: pytest.Item) -> bool:
    return any(
        getattr(node, f"report_{when}", None) is not None and getattr(node, f"report_{when}").failed
        for when in ("setup", "call")
    )


def _server_args(request: pytest.FixtureRequest) -> list[str]:
    marker = request.node.get_closest_marker("server_args")
    return list(marker.args) if marker else []


def _needs_etcd(kind: str) -> None:
    if kind == "etcd" and not etcd_available():
        pytest.skip("etcd/etcdctl binaries not installed")


@pytest.fixture
def servers(request: pytest.FixtureRequest, tmp_path: Path):
    """Factory `servers(kind, tls=None, extra_args=())` -> started ServerProcess.

    The caller waits for readiness (`wait_ready()`), so several servers can
    boot in parallel.
    """
    started: list[ServerProcess] = []

    def start(kind: str, *, tls: TLSFiles | None = None, extra_args=()) -> ServerProcess:
        _needs_etcd(kind)
        server = ServerProcess(
            kind, tmp_path / f"{kind}-{len(started)}", tls=tls, extra_args=extra_args
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
    if _failed(request.node):
        for server in started:
            print(f"\n===== {server.kind} log ({server.log_path}) =====\n{server.log_tail(200)}")


@pytest.fixture
def etcd_server(servers, request) -> ServerProcess:
    """A ready real etcd on fresh ports and data dir."""
    return servers("etcd", extra_args=_server_args(request)).wait_ready()


@pytest.fixture
def subject_server(servers, request) -> ServerProcess:
    """A ready server under test (ours, or etcd with K0S_DIFF_AGAINST=etcd)."""
    return servers(subject_kind(), extra_args=_server_args(request)).wait_ready()


@pytest.fixture
def tls_files(tmp_path: Path) -> TLSFiles:
    """A fresh CA with server and client certificates."""
    directory = tmp_path / "pki"
    directory.mkdir()
    return make_tls_files(directory)


@pytest.fixture
def pair(servers, request):
    """A fresh real etcd and a fresh subject, booted together, with clients."""
    args = _server_args(request)
    reference = servers("etcd", extra_args=args)
    subject = servers(subject_kind(), extra_args=args)
    reference.wait_ready()
    subject.wait_ready()
    both = Pair(Client(reference.channel()), Client(subject.channel()), reference, subject)
    yield both
    both.close()
