"""The reader gate of the LMDB environment: many readers, or one exclusive holder.

Compiled in src_ext/gate.pyx (readers pay no lock), twin in
k0s_store/pure/gate.py; see either for the protocol.
"""

from k0s_store.core import gate

ReaderGate = gate.ReaderGate

__all__ = ["ReaderGate"]
