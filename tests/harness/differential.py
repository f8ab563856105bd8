"""Send the same requests to a reference etcd and to the subject, compare.

Comparison is on `render()`ed text (normalised: member ids and raft terms
erased, revisions kept), so a pytest failure shows a readable diff of the two
answers. Failures compare by gRPC code AND message.
"""

from collections.abc import Sequence

from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from k0s_store.proto import rpc_pb2

from .normalise import normalised, render
from .processes import ServerProcess
from .rpc import Client, Outcome, RpcFailure
from .streams import BidiStream


def assert_same(reference: Outcome, subject: Outcome, what: str = "") -> None:
    """Fail with both renderings when the outcomes differ."""
    ref_text, sub_text = render(reference), render(subject)
    assert sub_text == ref_text, f"{what}\n--- etcd:\n{ref_text}\n--- subject:\n{sub_text}"


def merge_event_batches(responses: Sequence[Outcome]) -> list[Outcome]:
    """Merge consecutive event-only WatchResponses of one watcher.

    etcd delivers a replayed history in batches whose size depends on timing
    (unsynced watchers catch up every 100 ms), so the split of events between
    responses is not part of the contract; their order, the events and the
    last header revision are. Control responses (created, canceled,
    compacted, progress) are kept as they are.
    """
    merged: list[Outcome] = []
    for response in responses:
        if isinstance(response, RpcFailure) or not _is_event_batch(response):
            merged.append(response)
            continue
        last = merged[-1] if merged else None
        if (
            last is not None
            and not isinstance(last, RpcFailure)
            and _is_event_batch(last)
            and last.watch_id == response.watch_id
        ):
            last.events.extend(response.events)
            last.header.revision = response.header.revision
        else:
            copy = rpc_pb2.WatchResponse()
            copy.CopyFrom(response)
            merged.append(copy)
    return merged


def _is_event_batch(response: Message) -> bool:
    return (
        len(response.events) > 0
        and not response.created
        and not response.canceled
        and response.compact_revision == 0
    )


def assert_events_grouped_by_revision(responses: Sequence[Outcome]) -> None:
    """All events of one revision of one watcher arrive in one response."""
    seen: dict[tuple[int, int], int] = {}
    for index, response in enumerate(responses):
        if isinstance(response, RpcFailure):
            continue
        for event in response.events:
            key = (response.watch_id, event.kv.mod_revision)
            assert seen.setdefault(key, index) == index, f"revision {key} split across responses"


class Pair:
    """The reference etcd and the subject, each with a client.

    Args:
        reference: client of the real etcd.
        subject: client of the server under test.
        reference_server, subject_server: their processes (for etcdctl).
    """

    def __init__(
        self,
        reference: Client,
        subject: Client,
        reference_server: ServerProcess | None = None,
        subject_server: ServerProcess | None = None,
    ) -> None:
        self.reference = reference
        self.subject = subject
        self.reference_server = reference_server
        self.subject_server = subject_server

    def both(self, service: str, method: str, request: Message) -> tuple[Outcome, Outcome]:
        """Send `request` to etcd then to the subject; return both outcomes."""
        return (
            self.reference.call(service, method, request),
            self.subject.call(service, method, request),
        )

    def same(self, service: str, method: str, request: Message) -> Outcome:
        """Send to both, assert the outcomes are equal, return etcd's."""
        reference, subject = self.both(service, method, request)
        assert_same(reference, subject, f"{service}.{method}({render(request)})")
        return reference

    def kv(self, method: str, **fields) -> Outcome:
        """Shortcut: `pair.kv("Put", key=b"a", value=b"1")`."""
        request = getattr(rpc_pb2, _KV_REQUESTS[method])(**fields)
        return self.same("KV", method, request)

    def raw_same(self, path: str, payload: bytes) -> Outcome | bytes:
        """Raw-bytes call on both; equal failures, or equal decoded replies."""
        reference = _decoded(path, self.reference.raw_call(path, payload))
        subject = _decoded(path, self.subject.raw_call(path, payload))
        assert_same(reference, subject, f"raw {path} {payload!r}")
        return reference

    def watch(self) -> "WatchPair":
        """A Watch stream open on each server."""
        return WatchPair(
            BidiStream(self.reference.stubs["Watch"].Watch),
            BidiStream(self.subject.stubs["Watch"].Watch),
        )

    def close(self) -> None:
        self.reference.close()
        self.subject.close()


def _decoded(path: str, outcome: Outcome | bytes) -> Outcome | bytes:
    """Parse a raw reply of a known etcdserverpb method (so headers normalise)."""
    if not isinstance(outcome, bytes):
        return outcome
    service, _, method = path.strip("/").rpartition("/")
    package, _, service_name = service.rpartition(".")
    if package != "etcdserverpb" or service_name not in rpc_pb2.DESCRIPTOR.services_by_name:
        return outcome
    methods = rpc_pb2.DESCRIPTOR.services_by_name[service_name].methods_by_name
    if method not in methods:
        return outcome
    response = GetMessageClass(methods[method].output_type)()
    response.ParseFromString(outcome)
    return response


_KV_REQUESTS = {
    "Range": "RangeRequest",
    "Put": "PutRequest",
    "DeleteRange": "DeleteRangeRequest",
    "Txn": "TxnRequest",
    "Compact": "CompactionRequest",
}


class WatchPair:
    """A Watch stream on each server, fed the same requests."""

    def __init__(self, reference: BidiStream, subject: BidiStream) -> None:
        self.reference = reference
        self.subject = subject

    def send(self, request: rpc_pb2.WatchRequest) -> None:
        self.reference.send(request)
        self.subject.send(request)

    def create(self, **fields) -> None:
        """Send a create request (fields of WatchCreateRequest)."""
        self.send(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(**fields)))

    def cancel(self, watch_id: int) -> None:
        self.send(
            rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch_id))
        )

    def progress(self) -> None:
        self.send(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))

    def expect_same(self, count: int, timeout: float = 5.0) -> list[Outcome]:
        """Receive `count` responses from each side and compare them one by one."""
        reference = self.reference.recv_n(count, timeout)
        subject = self.subject.recv_n(count, timeout)
        _compare_sequences(reference, subject)
        assert len(reference) == count, f"etcd sent only {len(reference)} of {count} responses"
        return reference

    def expect_same_drained(self, quiet: float = 0.6, *, merge: bool = True) -> list[Outcome]:
        """Receive until quiet on both sides and compare.

        With `merge`, consecutive event batches of a watcher are merged first
        (see `merge_event_batches`); without, responses compare as sent.
        """
        reference = self.reference.drain(quiet)
        subject = self.subject.drain(quiet)
        assert_events_grouped_by_revision(subject)
        if merge:
            reference, subject = merge_event_batches(reference), merge_event_batches(subject)
        _compare_sequences(reference, subject)
        return reference

    def close(self) -> None:
        self.reference.close()
        self.subject.close()


def _by_watcher(responses: Sequence[Outcome]) -> str:
    """Render responses grouped by watch_id, in arrival order within a group.

    etcd orders the responses of one watcher, not those of different watchers
    on one stream (each watcher's events go out independently).
    """
    groups: dict[object, list[str]] = {}
    for response in responses:
        watch_id = "failure" if isinstance(response, RpcFailure) else response.watch_id
        groups.setdefault(watch_id, []).append(render(normalised(response)))
    return "\n".join(
        f"## watch_id {watch_id}\n" + "\n".join(texts)
        for watch_id, texts in sorted(groups.items(), key=lambda item: str(item[0]))
    )


def _compare_sequences(reference: Sequence[Outcome], subject: Sequence[Outcome]) -> None:
    ref_text, sub_text = _by_watcher(reference), _by_watcher(subject)
    message = f"watch responses differ\n--- etcd:\n{ref_text}\n--- subject:\n{sub_text}"
    assert sub_text == ref_text, message
