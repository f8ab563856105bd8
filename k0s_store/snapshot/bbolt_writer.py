"""Write a bbolt file as a stream of pages, with bounded memory.

The layout (byte formats in bbolt_format.py):

    page 0, 1     meta pages (txid 0 and 1, identical otherwise)
    page 2        the freelist (empty)
    page 3..      the root bucket's leaf: one element per top-level bucket
    then, per non-inline bucket in name order: its leaves in key order,
    then its branch pages level by level, the bucket's root last.

The meta pages need the high-water mark and the root leaf needs every
bucket's root page, so the writer makes two passes over the same items:
the constructor walks every bucket to size its pages (keeping one key per
leaf page for the branches above, and the value of buckets small enough to
be inlined), then `pages` walks them again and emits each page as soon as it
is full. Each bucket's `items` must therefore give the same sorted items
every time it is called (a caller reads them from one read transaction).
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from k0s_store.snapshot import bbolt_format as fmt

Items = Callable[[], Iterable[tuple[bytes, bytes]]]

_ROOT_PGID = 3
_FREELIST_PGID = 2


@dataclass
class _Bucket:
    name: bytes
    items: Items
    inline_value: bytes | None = None  # the whole bucket value when inlined
    leaves: list[tuple[bytes, int]] = field(default_factory=list)  # first key, pages spanned
    levels: list[list[list[tuple[bytes, int]]]] = field(default_factory=list)
    start: int = 0  # pgid of the first leaf
    leaf_end: int = 0  # pgid after the last leaf
    root: int = 0


class BoltWriter:
    """A bbolt file holding `buckets` (name -> items), streamed by `pages()`.

    Args:
        buckets: top-level bucket name -> a callable giving its (key, value)
            items in ascending key order, the same on every call.
        page_size: bytes per page (etcd uses the OS page size, 4096).
    """

    def __init__(self, buckets: dict[bytes, Items], page_size: int = fmt.PAGE_SIZE) -> None:
        self.page_size = page_size
        self._buckets = [_Bucket(name, buckets[name]) for name in sorted(buckets)]
        for bucket in self._buckets:
            self._plan_leaves(bucket)
        root_size = self._root_leaf_size()
        next_pgid = _ROOT_PGID + fmt.pages_spanned(root_size, page_size)
        for bucket in self._buckets:
            if bucket.inline_value is None:
                next_pgid = self._plan_branches(bucket, next_pgid)
        self.high_water = next_pgid

    @property
    def size(self) -> int:
        """Bytes of the whole file."""
        return self.high_water * self.page_size

    def pages(self) -> Iterator[bytes]:
        """The file, one page (or overflowing page run) at a time."""
        ps = self.page_size
        for txid in (0, 1):
            yield fmt.encode_meta(ps, _ROOT_PGID, _FREELIST_PGID, self.high_water, txid)
        yield fmt.encode_freelist(_FREELIST_PGID, ps)
        yield fmt.encode_leaf(_ROOT_PGID, self._root_items(), ps)
        for bucket in self._buckets:
            if bucket.inline_value is None:
                yield from self._bucket_pages(bucket)

    # -- planning ------------------------------------------------------------

    def _fits(self, used: int, count: int, extra: int, at_least: int = 1) -> bool:
        """Whether an element of `extra` bytes joins a page holding `count` in `used`
        bytes; a page takes `at_least` elements whatever their size (it overflows)."""
        return count < at_least or (used + extra <= self.page_size and count < fmt.MAX_ELEMENTS)

    def _plan_leaves(self, bucket: _Bucket) -> None:
        """Size the bucket's leaves (first key and page span of each), or inline it."""
        ps = self.page_size
        inline = None
        for page in self._leaf_groups(bucket):
            size = _leaf_size(page)
            single_small = not bucket.leaves and size <= ps // 4
            inline = fmt.encode_leaf(0, page, None) if single_small else None
            bucket.leaves.append((page[0][1] if page else b"", fmt.pages_spanned(size, ps)))
        if inline is not None:
            bucket.inline_value = fmt.BUCKET_HEADER.pack(0, 0) + inline
            bucket.leaves = []

    def _plan_branches(self, bucket: _Bucket, start: int) -> int:
        """Number the bucket's pages from `start`; returns the next free pgid."""
        ps = self.page_size
        bucket.start = start
        children: list[tuple[bytes, int]] = []
        pgid = start
        for key, span in bucket.leaves:
            children.append((key, pgid))
            pgid += span
        bucket.leaves = []
        bucket.leaf_end = pgid
        while len(children) > 1:
            level: list[list[tuple[bytes, int]]] = [[]]
            used = fmt.ELEMENT_SIZE
            for key, child in children:
                extra = fmt.ELEMENT_SIZE + len(key)
                # Two children at least, as bbolt's nodes: each level then shrinks.
                if not self._fits(used, len(level[-1]), extra, at_least=2):
                    level.append([])
                    used = fmt.ELEMENT_SIZE
                level[-1].append((key, child))
                used += extra
            bucket.levels.append(level)
            children = []
            for page in level:
                children.append((page[0][0], pgid))
                pgid += fmt.pages_spanned(_branch_size(page), ps)
        bucket.root = children[0][1]
        return pgid

    def _leaf_groups(self, bucket: _Bucket) -> Iterator[list[tuple[int, bytes, bytes]]]:
        """The bucket's items cut into leaf pages, by the rule `_plan_leaves` used."""
        used, page = fmt.ELEMENT_SIZE, []
        for key, value in bucket.items():
            extra = fmt.ELEMENT_SIZE + len(key) + len(value)
            if not self._fits(used, len(page), extra):
                yield page
                used, page = fmt.ELEMENT_SIZE, []
            page.append((0, bytes(key), bytes(value)))
            used += extra
        yield page

    def _root_items(self) -> list[tuple[int, bytes, bytes]]:
        return [
            (
                fmt.BUCKET_LEAF,
                b.name,
                b.inline_value if b.inline_value is not None else fmt.BUCKET_HEADER.pack(b.root, 0),
            )
            for b in self._buckets
        ]

    def _root_leaf_size(self) -> int:
        size = fmt.ELEMENT_SIZE
        for b in self._buckets:
            value = fmt.BUCKET_HEADER.size if b.inline_value is None else len(b.inline_value)
            size += fmt.ELEMENT_SIZE + len(b.name) + value
        return size

    # -- emitting ------------------------------------------------------------

    def _bucket_pages(self, bucket: _Bucket) -> Iterator[bytes]:
        ps = self.page_size
        pgid = bucket.start
        for page in self._leaf_groups(bucket):
            data = fmt.encode_leaf(pgid, page, ps)
            pgid += len(data) // ps
            yield data
        if pgid != bucket.leaf_end:
            raise RuntimeError(f"bucket {bucket.name!r} changed between the writer's two passes")
        for level in bucket.levels:
            for page in level:
                data = fmt.encode_branch(pgid, page, ps)
                pgid += len(data) // ps
                yield data


def _leaf_size(items: list[tuple[int, bytes, bytes]]) -> int:
    return fmt.ELEMENT_SIZE + sum(fmt.ELEMENT_SIZE + len(k) + len(v) for _, k, v in items)


def _branch_size(children: list[tuple[bytes, int]]) -> int:
    return fmt.ELEMENT_SIZE + sum(fmt.ELEMENT_SIZE + len(k) for k, _ in children)
