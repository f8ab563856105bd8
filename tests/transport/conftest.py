"""A k0s-store on the native transport shared by a module's tests."""

import pytest
from native_server import start_native


@pytest.fixture(scope="module")
def native_server(tmp_path_factory):
    """One native-transport server for the whole module; its log is printed if it died."""
    server = start_native(tmp_path_factory.mktemp("native"))
    yield server
    alive = server.proc is not None and server.proc.poll() is None
    server.stop()
    if not alive:
        print(f"\n===== server log =====\n{server.log_tail(200)}")
