"""The test harness itself."""

import socket

from harness.processes import ServerProcess


def test_a_server_whose_port_was_taken_starts_on_another(tmp_path):
    """free_port() hands out a port free a moment ago; if another process
    takes it before the server binds, the first start moves to a new one."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = ServerProcess("ours", tmp_path)
        server.port = taken
        try:
            server.start().wait_ready()
            assert server.port != taken
            assert "address already in use" in server.log_tail().lower()  # the lost start
        finally:
            server.stop()
