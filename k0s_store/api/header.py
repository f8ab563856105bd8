"""etcd's ResponseHeader: who answered, at which revision, in which term."""

from k0s_store.core import codec
from k0s_store.proto import rpc_pb2


class Header:
    """Fills response headers the way etcd's v3rpc `header.fill` does.

    Args:
        cluster_id: the cluster's id (the store persists it).
        member_id: this member's id.
        raft_term: the term reported in every header.
    """

    def __init__(self, cluster_id: int, member_id: int, raft_term: int) -> None:
        self.cluster_id = cluster_id
        self.member_id = member_id
        self.raft_term = raft_term

    def encode(self, revision: int) -> bytes:
        """The marshalled header body for a response at `revision`."""
        return codec.encode_header(self.cluster_id, self.member_id, revision, self.raft_term)

    def message(self, revision: int = 0) -> rpc_pb2.ResponseHeader:
        """The header as a protobuf message (for the services that are not hot)."""
        return rpc_pb2.ResponseHeader(
            cluster_id=self.cluster_id,
            member_id=self.member_id,
            revision=revision,
            raft_term=self.raft_term,
        )


def nested_header(revision: int) -> bytes:
    """Header of a response inside a Txn: etcd sets only its revision."""
    return codec.encode_header(0, 0, revision, 0)
