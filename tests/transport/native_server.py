"""Starting k0s-store on the native transport, and what tests count on it."""

import os
from pathlib import Path

import pytest
from harness.processes import ServerProcess

from k0s_store.core import PURE


def open_fds(server: ServerProcess) -> int:
    """How many descriptors the server process holds now."""
    assert server.proc is not None
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


def start_native(workdir: Path, extra_urls: tuple[str, ...] = (), **kwargs) -> ServerProcess:
    """A ready k0s-store serving with K0S_STORE_TRANSPORT=native, on its URL and `extra_urls`."""
    if PURE:
        pytest.skip("the native transport needs the compiled core (K0S_STORE_PURE=1)")
    server = ServerProcess("ours", workdir, **kwargs)
    if extra_urls:
        server.extra_args.append(f"--listen-client-urls={','.join((server.url, *extra_urls))}")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("K0S_STORE_TRANSPORT", "native")
        server.start()
    try:
        return server.wait_ready()
    except Exception:
        server.stop()
        raise


def anon_rss_bytes(server: ServerProcess) -> int:
    """The server's resident anonymous memory (its heaps, not LMDB's file mapping)."""
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/PID/status")
