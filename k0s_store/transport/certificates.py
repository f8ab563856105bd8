"""The native server's TLS contexts, reloaded when their files change.

`k0s-pki rotate` rewrites the server's certificate and key in place; the
watcher notices (mtime, size or inode of --cert-file, --key-file,
--trusted-ca-file) within `POLL_SECONDS` and new connections get the new
pair; connections already open keep theirs. A pair that cannot be loaded
(a rotation half written, a key not matching) is logged and retried, and
the previous pair stays in service meanwhile.
"""

import logging
import os
import threading

from k0s_store._ext.h2server import TLSContext
from k0s_store.transport.listeners import TLSFiles

log = logging.getLogger("k0s_store.tls")

POLL_SECONDS = 1.0


def _signature(tls: TLSFiles) -> tuple:
    out = []
    for path in (tls.cert_file, tls.key_file, tls.trusted_ca_file):
        try:
            st = os.stat(path) if path else None
        except OSError:
            st = None
        out.append((st.st_mtime_ns, st.st_size, st.st_ino) if st else None)
    return tuple(out)


def load_context(tls: TLSFiles) -> TLSContext:
    """A server context from the files; ValueError naming the file that cannot be used."""
    return TLSContext(tls.cert_file, tls.key_file, tls.trusted_ca_file, tls.client_cert_auth)


class CertificateWatcher:
    """Holds the current TLS context of the native server's secure listeners.

    Args:
        tls: the files (etcd's flags).
        core: the server core (`h2server.NativeServer`), told of new contexts.
    """

    def __init__(self, tls: TLSFiles, core) -> None:
        self.tls = tls
        self.core = core
        self._signature = _signature(tls)
        self.context = load_context(tls)
        self._listeners: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tls-reload", daemon=True)

    def serve(self, listener_index: int) -> None:
        """Listener `listener_index` of the core serves TLS with these files."""
        self._listeners.append(listener_index)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def reload_if_changed(self) -> bool:
        """Load the files again if they changed; True when new connections get a new pair."""
        signature = _signature(self.tls)
        if signature == self._signature:
            return False
        try:
            context = load_context(self.tls)
        except ValueError as exc:
            log.warning("TLS files changed but cannot be used yet (retrying): %s", exc)
            return False
        self._signature = signature
        self.context = context
        for index in self._listeners:
            self.core.set_tls(index, context)
        log.info("reloaded TLS certificate %s for new connections", self.tls.cert_file)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.reload_if_changed()
