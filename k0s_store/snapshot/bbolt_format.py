"""bbolt's file format (go.etcd.io/bbolt 1.3, the store under etcd 3.4): the byte layout.

A bbolt file is an array of fixed-size pages (PAGE_SIZE, the OS page size,
4096 on Linux/amd64); page N starts at byte N * page_size. All integers are
little-endian (bbolt writes its structs in native order on amd64).

Every page starts with PAGE_HEADER (16 bytes):

    id u64 | flags u16 | count u16 | overflow u32

`id` is the page's own number; `count` is the number of elements; a page
whose content needs more room spans `overflow` more pages right after it.

- Pages 0 and 1: META pages (flags META_PAGE). After the header, META (64 bytes):

      magic u32 (MAGIC) | version u32 (VERSION) | page_size u32 | flags u32
      | root bucket: root pgid u64, sequence u64 | freelist pgid u64
      | pgid u64 (high-water mark: pages in use) | txid u64 | checksum u64

  checksum = FNV-1a 64 of the 56 bytes before it. A reader takes the valid
  meta with the higher txid (a writer alternates between the two).
- FREELIST page (flags FREELIST_PAGE): `count` page ids (u64) of free pages
  after the header; count 0xFFFF means the real count is the first u64.
  The meta's freelist is NO_FREELIST when the freelist is not stored.
- BRANCH page: `count` BRANCH_ELEMENTs (pos u32 | ksize u32 | pgid u64) then
  the keys; element i's key starts `pos` bytes after element i itself and is
  the first key of child page `pgid`.
- LEAF page: `count` LEAF_ELEMENTs (flags u32 | pos u32 | ksize u32 | vsize u32)
  then key and value of each element back to back, again `pos` bytes after
  the element. Flags BUCKET_LEAF marks a value that is a nested bucket.

A bucket is a B+tree; its value in the parent is BUCKET_HEADER (root pgid
u64 | sequence u64). Root 0 means an *inline* bucket: its single leaf page
(header and elements, unpadded, id 0) follows the 16-byte header inside the
value. The top-level buckets (etcd's `key`, `meta`, ...) are the elements
of the meta's root bucket. Keys are unique and sorted (bytewise) in a bucket.
"""

import struct

PAGE_SIZE = 4096
MAGIC = 0xED0CDAED
VERSION = 2
NO_FREELIST = 0xFFFF_FFFF_FFFF_FFFF

BRANCH_PAGE, LEAF_PAGE, META_PAGE, FREELIST_PAGE = 0x01, 0x02, 0x04, 0x10
BUCKET_LEAF = 0x01
FREELIST_OVERFLOW_COUNT = 0xFFFF
MAX_ELEMENTS = 0xFFFF - 1  # bbolt refuses to write a page of 0xFFFF elements

PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
BRANCH_ELEMENT = struct.Struct("<IIQ")  # pos, ksize, pgid
LEAF_ELEMENT = struct.Struct("<IIII")  # flags, pos, ksize, vsize
BUCKET_HEADER = struct.Struct("<QQ")  # root pgid, sequence
# magic, version, page size, flags, root pgid, root sequence, freelist, pgid, txid, checksum
META = struct.Struct("<IIIIQQQQQQ")
PGID = struct.Struct("<Q")
ELEMENT_SIZE = 16
assert PAGE_HEADER.size == BRANCH_ELEMENT.size == LEAF_ELEMENT.size == ELEMENT_SIZE
assert META.size == 64

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1


def fnv64a(data: bytes) -> int:
    """FNV-1a 64 (Go's hash/fnv New64a), the meta page checksum."""
    h = _FNV64_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV64_PRIME) & _U64
    return h


def pages_spanned(size: int, page_size: int) -> int:
    """Pages a page of `size` content bytes occupies (1 + its overflow)."""
    return max(1, -(-size // page_size))


def encode_meta(page_size: int, root: int, freelist: int, high_water: int, txid: int) -> bytes:
    """One meta page (page id txid % 2), checksummed, padded to page_size."""
    fields = (MAGIC, VERSION, page_size, 0, root, 0, freelist, high_water, txid)
    body = META.pack(*fields, 0)[:-8]
    meta = body + PGID.pack(fnv64a(body))
    page = PAGE_HEADER.pack(txid % 2, META_PAGE, 0, 0) + meta
    return page.ljust(page_size, b"\0")


def encode_leaf(pgid: int, items: list[tuple[int, bytes, bytes]], page_size: int | None) -> bytes:
    """A leaf page of (flags, key, value) items; padded to whole pages unless
    page_size is None (an inline bucket's page)."""
    header_end = ELEMENT_SIZE + ELEMENT_SIZE * len(items)
    elements, data = [], []
    offset = header_end
    for index, (flags, key, value) in enumerate(items):
        element_at = ELEMENT_SIZE * (index + 1)
        elements.append(LEAF_ELEMENT.pack(flags, offset - element_at, len(key), len(value)))
        data += (key, value)
        offset += len(key) + len(value)
    return _finish(pgid, LEAF_PAGE, elements, data, offset, page_size)


def encode_branch(pgid: int, children: list[tuple[bytes, int]], page_size: int) -> bytes:
    """A branch page of (first key, child pgid) children, padded to whole pages."""
    offset = ELEMENT_SIZE + ELEMENT_SIZE * len(children)
    elements, data = [], []
    for index, (key, child) in enumerate(children):
        element_at = ELEMENT_SIZE * (index + 1)
        elements.append(BRANCH_ELEMENT.pack(offset - element_at, len(key), child))
        data.append(key)
        offset += len(key)
    return _finish(pgid, BRANCH_PAGE, elements, data, offset, page_size)


def _finish(
    pgid: int, flags: int, elements: list, data: list, size: int, page_size: int | None
) -> bytes:
    overflow = 0 if page_size is None else pages_spanned(size, page_size) - 1
    header = PAGE_HEADER.pack(pgid, flags, len(elements), overflow)
    page = b"".join([header, *elements, *data])
    if page_size is None:
        return page
    return page.ljust((overflow + 1) * page_size, b"\0")


def encode_freelist(pgid: int, page_size: int) -> bytes:
    """An empty freelist page (a freshly written file has no free page)."""
    return PAGE_HEADER.pack(pgid, FREELIST_PAGE, 0, 0).ljust(page_size, b"\0")
