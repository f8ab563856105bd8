"""Event routing to synced watchers, both twins: ranges, single keys, filters, prev_kv."""

from harness.twins import twin_fixture

from k0s_store.mvcc.types import EVENT_DELETE, EVENT_PUT, Event

fanout = twin_fixture("fanout")


class W:
    def __init__(self, key, end, next_rev=0, skip=(), prev_kv=False):
        self.key, self.end, self.next_rev = key, end, next_rev
        self.skip, self.prev_kv = set(skip), prev_kv


def test_route(fanout):
    a = W(b"a", None, prev_kv=True)
    prefix = W(b"a", b"b")
    everything = W(b"", b"")
    late = W(b"a", b"z", next_rev=6)
    no_delete = W(b"a", b"", skip={EVENT_DELETE}, prev_kv=True)
    put_a = Event(EVENT_PUT, b"kv-a", b"old-a")
    put_b = Event(EVENT_PUT, b"kv-b", None)
    del_a = Event(EVENT_DELETE, b"del-a", b"kv-a")
    batches = [(5, [put_a, put_b], [b"a", b"b"]), (6, [del_a], [b"a"])]
    pending = fanout.route(batches, {b"a": {a}}, [prefix, everything, late, no_delete], Event)
    stripped_put_a, stripped_del_a = (
        Event(EVENT_PUT, b"kv-a", None),
        Event(EVENT_DELETE, b"del-a", None),
    )
    assert pending == {
        a: [put_a, del_a],
        prefix: [stripped_put_a, stripped_del_a],
        everything: [stripped_put_a, put_b, stripped_del_a],
        late: [stripped_del_a],
        no_delete: [put_a, put_b],
    }
    assert next(iter(pending)) is a  # single-key watchers first, then ranges in order


def test_nothing_matches(fanout):
    assert (
        fanout.route([(2, [Event(EVENT_PUT, b"kv", None)], [b"x"])], {}, [W(b"a", b"b")], Event)
        == {}
    )
