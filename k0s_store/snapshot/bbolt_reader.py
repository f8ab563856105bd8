"""Read a bbolt file (etcd's db or snapshot), checking it as it is walked.

Byte formats: bbolt_format.py. The file is memory-mapped, never read whole.
Opening picks the valid meta page with the higher txid (magic, version and
FNV-1a checksum checked) and refuses a file shorter than its high-water
mark. Walking a bucket checks every page it reaches: inside the high-water
mark, carrying its own id and a branch/leaf type, referenced once, elements
inside the page, keys strictly ascending. A full `walk()` also checks that
every page is reachable or free, as bbolt's own `Tx.Check` does. Any
failure raises SnapshotError with a one-line reason.
"""

import mmap
import os
from collections.abc import Callable, Iterator

from k0s_store.snapshot import bbolt_format as fmt
from k0s_store.snapshot.errors import SnapshotError

_MAX_DEPTH = 64
_MIN_PAGE, _MAX_PAGE = 512, 65536


class _Meta:
    def __init__(self, fields: tuple) -> None:
        (_, _, self.page_size, _, self.root, _, self.freelist, self.high_water, self.txid, _) = (
            fields
        )


class BoltFile:
    """A bbolt file opened read-only.

    Args:
        path: the file.
        data_size: bytes of the database (a snapshot's sha256 trailer
            excluded); default: the whole file.
        progress: called with the number of bytes of each page walked.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        data_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        try:
            size = os.fstat(self._file.fileno()).st_size if data_size is None else data_size
            if size < 2 * _MIN_PAGE:
                raise SnapshotError(f"not a bbolt database: {size} bytes is too small")
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._data = memoryview(self._map)[:size]
            self.meta = self._choose_meta()
            self.page_size = self.meta.page_size
            needed = self.meta.high_water * self.page_size
            if size < needed:
                raise SnapshotError(
                    f"truncated database: {size} bytes, its meta page needs {needed}"
                )
        except BaseException:
            self.close()
            raise
        self._progress = progress
        self._seen = bytearray(self.meta.high_water)

    def close(self) -> None:
        """Release the mapping and the file."""
        data = getattr(self, "_data", None)
        if data is not None:
            data.release()
        if getattr(self, "_map", None) is not None:
            self._map.close()
        self._file.close()

    def __enter__(self) -> "BoltFile":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def size(self) -> int:
        """Bytes in use (high-water mark times page size): etcd's db size."""
        return self.meta.high_water * self.page_size

    # -- public walks --------------------------------------------------------

    def buckets(self) -> list[bytes]:
        """Names of the top-level buckets, sorted."""
        return [name for name, _ in self._top_level(check=False)]

    def items(self, name: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The (key, value) items of one top-level bucket, in key order."""
        for bucket, value in self._top_level(check=False):
            if bucket == name:
                yield from self._bucket_items(name, value, check=False)
                return
        raise SnapshotError(f"no bucket {name.decode(errors='replace')!r} in the database")

    def walk(self) -> Iterator[tuple[bytes, bytes, bytes]]:
        """(bucket, key, value) of every top-level bucket, in order; at the end,
        checks that every page was reached once or is free. Call once."""
        for name, value in self._top_level(check=True):
            for key, item in self._bucket_items(name, value, check=True):
                yield name, key, item
        self._check_accounting()

    # -- meta ----------------------------------------------------------------

    def _read_meta(self, offset: int) -> _Meta | None:
        end = offset + fmt.PAGE_HEADER.size + fmt.META.size
        if end > len(self._data):
            return None
        raw = bytes(self._data[offset + fmt.PAGE_HEADER.size : end])
        fields = fmt.META.unpack(raw)
        magic, version, checksum = fields[0], fields[1], fields[-1]
        if magic != fmt.MAGIC or version != fmt.VERSION:
            return None
        if checksum != 0 and checksum != fmt.fnv64a(raw[:-8]):
            return None
        meta = _Meta(fields)
        ps = meta.page_size
        if ps < _MIN_PAGE or ps > _MAX_PAGE or ps & (ps - 1):
            return None
        return meta

    def _choose_meta(self) -> _Meta:
        meta0 = self._read_meta(0)
        meta1 = self._read_meta(meta0.page_size if meta0 else fmt.PAGE_SIZE)
        valid = [m for m in (meta0, meta1) if m is not None]
        if meta0 and meta1 and meta0.page_size != meta1.page_size:
            valid = [meta0]
        if not valid:
            raise SnapshotError("not a bbolt database: no valid meta page (magic or checksum)")
        meta = max(valid, key=lambda m: m.txid)
        if meta.root >= meta.high_water or meta.high_water < 3:
            raise SnapshotError(f"corrupt meta page: root page {meta.root} out of bounds")
        return meta

    # -- pages ---------------------------------------------------------------

    def _page(self, pgid: int, check: bool) -> tuple[int, int, int, int]:
        """(flags, count, start, end) of page `pgid`, marked as reached."""
        hw, ps = self.meta.high_water, self.page_size
        if pgid >= hw:
            raise SnapshotError(f"corrupt database: page {pgid} beyond the high-water mark {hw}")
        start = pgid * ps
        page_id, flags, count, overflow = fmt.PAGE_HEADER.unpack_from(self._data, start)
        if page_id != pgid:
            raise SnapshotError(f"corrupt database: page {pgid} says it is page {page_id}")
        if pgid + overflow >= hw:
            raise SnapshotError(f"corrupt database: page {pgid} overflows the high-water mark")
        if check:
            for n in range(pgid, pgid + overflow + 1):
                if self._seen[n]:
                    raise SnapshotError(f"corrupt database: page {n} is referenced twice")
                self._seen[n] = 1
            if self._progress:
                self._progress((overflow + 1) * ps)
        return flags, count, start, start + (overflow + 1) * ps

    def _elements(
        self, buf, flags: int, count: int, start: int, end: int, where: str
    ) -> Iterator[tuple]:
        """Decoded elements of a page in buf[start:end]: leaf (flags, key, value)
        or branch (key, pgid)."""
        if start + fmt.ELEMENT_SIZE * (count + 1) > end:
            raise SnapshotError(f"corrupt database: {where} has more elements than room")
        for i in range(count):
            at = start + fmt.ELEMENT_SIZE * (i + 1)
            if flags & fmt.LEAF_PAGE:
                eflags, pos, ksize, vsize = fmt.LEAF_ELEMENT.unpack_from(buf, at)
            else:
                pos, ksize, pgid = fmt.BRANCH_ELEMENT.unpack_from(buf, at)
                vsize = 0
            kstart = at + pos
            if pos < fmt.ELEMENT_SIZE or kstart + ksize + vsize > end or ksize == 0:
                raise SnapshotError(f"corrupt database: element {i} of {where} out of bounds")
            key = bytes(buf[kstart : kstart + ksize])
            if flags & fmt.LEAF_PAGE:
                yield eflags, key, bytes(buf[kstart + ksize : kstart + ksize + vsize])
            else:
                yield key, pgid

    def _tree(self, pgid: int, check: bool, depth: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
        """Leaf elements of the tree rooted at `pgid`, in order."""
        if depth > _MAX_DEPTH:
            raise SnapshotError(f"corrupt database: tree deeper than {_MAX_DEPTH} at page {pgid}")
        flags, count, start, end = self._page(pgid, check)
        where = f"page {pgid}"
        if flags & fmt.LEAF_PAGE:
            yield from self._elements(self._data, flags, count, start, end, where)
        elif flags & fmt.BRANCH_PAGE:
            for _, child in self._elements(self._data, flags, count, start, end, where):
                yield from self._tree(child, check, depth + 1)
        else:
            raise SnapshotError(f"corrupt database: page {pgid} is neither a branch nor a leaf")

    def _top_level(self, check: bool) -> Iterator[tuple[bytes, bytes]]:
        last = b""
        for flags, name, value in self._tree(self.meta.root, check):
            if not flags & fmt.BUCKET_LEAF or len(value) < fmt.BUCKET_HEADER.size:
                raise SnapshotError(f"corrupt database: top-level {name!r} is not a bucket")
            if name <= last:
                raise SnapshotError("corrupt database: top-level buckets out of order")
            last = name
            yield name, value

    def _bucket_items(
        self, name: bytes, value: bytes, check: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        root, _ = fmt.BUCKET_HEADER.unpack_from(value)
        label = name.decode(errors="replace")
        if root == 0:
            page = value[fmt.BUCKET_HEADER.size :]
            if len(page) < fmt.PAGE_HEADER.size:
                raise SnapshotError(f"corrupt database: inline bucket {label!r} is cut short")
            _, flags, count, _ = fmt.PAGE_HEADER.unpack_from(page)
            if not flags & fmt.LEAF_PAGE:
                raise SnapshotError(f"corrupt database: inline bucket {label!r} is not a leaf")
            elements = self._elements(page, flags, count, 0, len(page), f"bucket {label!r}")
        else:
            elements = self._tree(root, check)
        last = None
        for flags, key, item in elements:
            if flags & fmt.BUCKET_LEAF:
                raise SnapshotError(f"not an etcd database: nested bucket in {label!r}")
            if last is not None and key <= last:
                raise SnapshotError(f"corrupt database: keys out of order in bucket {label!r}")
            last = key
            yield key, item

    def _check_accounting(self) -> None:
        """Every page below the high-water mark is reached or free (bbolt's Tx.Check)."""
        meta = self.meta
        if meta.freelist == fmt.NO_FREELIST:
            return  # the freelist is not stored: free pages cannot be told apart
        for pgid in (0, 1):
            self._seen[pgid] = 1
        flags, count, start, end = self._page(meta.freelist, check=True)
        if not flags & fmt.FREELIST_PAGE:
            raise SnapshotError(f"corrupt database: page {meta.freelist} is not the freelist")
        first = start + fmt.PAGE_HEADER.size
        if count == fmt.FREELIST_OVERFLOW_COUNT:
            (count,) = fmt.PGID.unpack_from(self._data, first)
            first += fmt.PGID.size
        if first + count * fmt.PGID.size > end:
            raise SnapshotError("corrupt database: the freelist overflows its page")
        for i in range(count):
            (free,) = fmt.PGID.unpack_from(self._data, first + i * fmt.PGID.size)
            if free >= meta.high_water or self._seen[free]:
                raise SnapshotError(f"corrupt database: free page {free} is in use or out of range")
            self._seen[free] = 1
        missing = self._seen.find(0)
        if missing != -1:
            raise SnapshotError(f"corrupt database: page {missing} is neither reachable nor free")
