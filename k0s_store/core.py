"""The one place that chooses the compiled core or its pure-Python twin.

Every compiled module in `src_ext/` (built as `k0s_store._ext.<name>`) has a
twin `k0s_store.pure.<name>` exporting the same names with the same
behaviour. Import them from here only::

    from k0s_store.core import codec

`lmdb` is the LMDB binding: ours (src_ext/lmdb.pyx, over liblmdb) with the
compiled core, py-lmdb with the twins. LMDB forbids opening one environment
twice in a process, so a process uses one of them only; both read and write
the same file format. `lmdb_kv` (the key-index reads) goes through LMDB's C
API when compiled, so it takes transactions of our binding only.

`K0S_STORE_PURE=1` forces the twins (the test suite runs once each way).
Without it a missing compiled build is an error, not a silent slowdown.
"""

import os

PURE = os.environ.get("K0S_STORE_PURE", "") not in ("", "0")

if PURE:
    import lmdb

    from k0s_store.pure import (
        codec,
        counters,
        crc,
        fanout,
        gate,
        lmdb_kv,
        revindex,
        txn_codec,
    )
else:
    try:
        from k0s_store._ext import (
            codec,
            counters,
            crc,
            fanout,
            gate,
            lmdb,
            lmdb_kv,
            revindex,
            txn_codec,
        )
    except ImportError as exc:  # pragma: no cover - depends on the build
        raise ImportError(
            "k0s_store's compiled core is not built: run `pip install -e .` "
            "(or set K0S_STORE_PURE=1 to use the pure-Python twin)"
        ) from exc

__all__ = [
    "PURE",
    "codec",
    "counters",
    "crc",
    "fanout",
    "gate",
    "lmdb",
    "lmdb_kv",
    "revindex",
    "txn_codec",
]
