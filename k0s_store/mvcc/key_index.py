"""The revisions of one user key: generations, lookups and compaction.

A key's history is kept as one flat byte string of fixed-size records, in
ascending revision order (the value of the `index` DB, see index.py):

    record = main (8 bytes, big-endian) | sub (8 bytes, big-endian) | flag (1 byte)
    flag   = 0 for a put, 1 for a tombstone (a delete); + 2 on an index entry
             whose older records are in history chunks (index.py)

A tombstone ends a *generation*; the records after the last tombstone form
the current generation (empty while the key is deleted). This is etcd's
keyIndex flattened. The worked example of etcd's key_index.go, reused by the
tests: put(1.0); put(2.0); tombstone(3.0); put(4.0); tombstone(5.0) gives

    records: 1.0 2.0 3.0(t) 4.0 5.0(t)
    generations: {1.0, 2.0, 3.0(t)} {4.0, 5.0(t)} {}

Compaction at rev keeps, of revisions <= rev, only the largest one, unless
that one is a tombstone (its generation then goes entirely):

    compact(2): 2.0 3.0(t) 4.0 5.0(t)
    compact(4): 4.0 5.0(t)
    compact(5): (nothing: the key leaves the index)
    compact(6): (nothing)

Lookup at rev: the largest record with main <= rev, unless it is a
tombstone (the key did not exist then).
"""

from k0s_store.core import revindex

RECORD_SIZE = revindex.RECORD_SIZE  # 17

Revision = tuple[int, int, bool]  # (main, sub, tombstone)

# The record loops live in the compiled core (src_ext/revindex.pyx, twin
# k0s_store/pure/revindex.py); their behaviour is described above.
record = revindex.record
unpack = revindex.unpack
pack = revindex.pack
latest = revindex.latest
live_at = revindex.live_at
live_rev_key = revindex.live_rev_key
compact = revindex.compact
keep = revindex.keep
