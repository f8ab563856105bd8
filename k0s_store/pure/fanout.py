"""Routing committed events to synced watchers: the pure-Python twin of src_ext/fanout.pyx.

A watcher here is any object with `key`, `end` (None: the single key `key`;
b"": every key >= key), `next_rev`, `skip` (event types it filters out) and
`prev_kv`, as k0s_store/mvcc/watch_hub.Watcher.
"""

__all__ = ["route"]


def route(batches, keyed: dict, ranged, event_type) -> dict:
    """The events of each watcher, in order, from a committed write batch.

    Args:
        batches: (revision, events, keys) per write request, in revision order.
        keyed: single-key watchers, as {key: set of watchers}.
        ranged: the range watchers (iterable).
        event_type: the Event class (to strip prev_kv for watchers not asking for it).

    Returns:
        {watcher: [Event, ...]} for every watcher with at least one event.
    """
    pending: dict = {}
    for rev, events, keys in batches:
        for event, key in zip(events, keys, strict=True):
            stripped = None
            targets = list(keyed.get(key, ()))
            targets += [w for w in ranged if key >= w.key and (not w.end or key < w.end)]
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
