"""Make two servers' responses comparable.

Only what legitimately differs between two etcd members is erased: the
cluster_id, member_id and raft_term of every ResponseHeader (nested ones in
Txn responses included). Header revisions stay. Lease TTLs that tick with
wall time get a tolerance in the tests that need it, not here.
"""

import hashlib

from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from .rpc import Outcome, RpcFailure

_HEADER = "etcdserverpb.ResponseHeader"
_ERASED = ("cluster_id", "member_id", "raft_term")


def _erase_headers(message: Message) -> None:
    if message.DESCRIPTOR.full_name == _HEADER:
        for name in _ERASED:
            message.ClearField(name)
        return
    for field, value in message.ListFields():
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.is_repeated:
            if field.message_type.GetOptions().map_entry:
                continue
            for item in value:
                _erase_headers(item)
        else:
            _erase_headers(value)


def normalised(outcome: Outcome) -> Outcome:
    """A copy of `outcome` without member-specific header fields."""
    if isinstance(outcome, RpcFailure):
        return outcome
    copy = type(outcome)()
    copy.CopyFrom(outcome)
    _erase_headers(copy)
    return copy


def render(outcome: Outcome | bytes) -> str:
    """Readable, diffable text of an outcome (normalised first)."""
    if isinstance(outcome, RpcFailure):
        return f"FAILURE {outcome.code}: {outcome.details}"
    if isinstance(outcome, bytes):
        return f"BYTES {outcome!r}"
    name = outcome.DESCRIPTOR.name
    text = text_format.MessageToString(normalised(outcome), as_utf8=False)
    return f"{name} {{\n{_shorten_lines(text)}}}"


MAX_LINE = 200


def _shorten_lines(text: str) -> str:
    """Cut huge values (MiB-sized test payloads) so diffs stay readable."""
    lines = []
    for line in text.splitlines(keepends=True):
        if len(line) > MAX_LINE:
            digest = hashlib.sha256(line.encode()).hexdigest()[:16]
            line = f"{line[:MAX_LINE]}... ({len(line)} chars, sha256 {digest})\n"
        lines.append(line)
    return "".join(lines)
