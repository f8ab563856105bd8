# cython: language_level=3
"""Routing committed events to synced watchers, compiled (twin: k0s_store/pure/fanout.py).

A watcher here is any object with `key`, `end` (None: the single key `key`;
b"": every key >= key), `next_rev`, `skip` (event types it filters out) and
`prev_kv`, as k0s_store/mvcc/watch_hub.Watcher. The range test of every
range watcher against every event runs here, without a Python frame per pair.
"""

__all__ = ["route"]


def route(batches, dict keyed, ranged, event_type) -> dict:
    """The events of each watcher, in order, from a committed write batch.

    Args:
        batches: (revision, events, keys) per write request, in revision order.
        keyed: single-key watchers, as {key: set of watchers}.
        ranged: the range watchers (iterable).
        event_type: the Event class (to strip prev_kv for watchers not asking for it).

    Returns:
        {watcher: [Event, ...]} for every watcher with at least one event.
    """
    cdef dict pending = {}
    cdef list ranges = [(w.key, w.end, w) for w in ranged]
    cdef list targets
    cdef bytes key, start, end
    cdef long long rev
    cdef Py_ssize_t i
    for rev, events, keys in batches:
        if len(events) != len(keys):
            raise ValueError("events and keys differ in length")
        for i in range(len(events)):
            event = events[i]
            key = keys[i]
            stripped = None
            group = keyed.get(key)
            targets = list(group) if group else []
            for start, end, watcher in ranges:
                if key >= start and (not end or key < end):
                    targets.append(watcher)
            for watcher in targets:
                if rev < watcher.next_rev or event.type in watcher.skip:
                    continue
                if watcher.prev_kv or event.prev_kv is None:
                    delivered = event
                else:
                    if stripped is None:
                        stripped = event_type(event.type, event.kv, None)
                    delivered = stripped
                found = pending.get(watcher)
                if found is None:
                    pending[watcher] = [delivered]
                else:
                    found.append(delivered)
    return pending
