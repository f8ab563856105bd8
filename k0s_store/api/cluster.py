"""etcd's Cluster service for a single-member store.

MemberList names this server. Membership changes cannot succeed here; each
gets the answer etcd gives in the same situation where one exists:
removing the only member needs more started members, promoting it is
promoting a non-learner, an unknown id is "member not found". Adding a
member (only a real etcd cluster can grow) is UNIMPLEMENTED.
"""

from urllib.parse import urlsplit

from k0s_store import errors
from k0s_store.api.auth_guard import AuthGuard
from k0s_store.api.caller import ANONYMOUS, Caller
from k0s_store.api.header import Header
from k0s_store.api.settings import Settings
from k0s_store.proto import rpc_pb2 as pb


class ClusterService:
    """The Cluster service: one member, this server.

    Membership changes need the root role once auth is enabled (etcd's
    checkMembershipOperationPermission); MemberList needs nothing.
    """

    def __init__(self, store, header: Header, settings: Settings, auth: AuthGuard) -> None:
        self.header = header
        self.settings = settings
        self.member_id = store.member_id
        self.auth = auth

    def _members(self) -> list[pb.Member]:
        return [
            pb.Member(
                ID=self.member_id,
                name=self.settings.name,
                peerURLs=self.settings.peer_urls,
                clientURLs=self.settings.client_urls,
            )
        ]

    def _header(self) -> pb.ResponseHeader:
        return self.header.message()  # etcd's cluster headers carry no revision

    def member_list(self, req: pb.MemberListRequest) -> pb.MemberListResponse:
        """The one member."""
        return pb.MemberListResponse(header=self._header(), members=self._members())

    def member_add(
        self, req: pb.MemberAddRequest, caller: Caller = ANONYMOUS
    ) -> pb.MemberAddResponse:
        """Invalid URLs get etcd's error; valid ones cannot be added here."""
        _check_urls(req.peerURLs)
        self.auth.check_admin(caller)
        raise errors.UnsupportedError()

    def member_remove(
        self, req: pb.MemberRemoveRequest, caller: Caller = ANONYMOUS
    ) -> pb.MemberRemoveResponse:
        """Removing the only member leaves no quorum: etcd refuses it."""
        self.auth.check_admin(caller)
        self._check_known(req.ID)
        raise errors.MemberNotEnoughStartedError()

    def member_update(
        self, req: pb.MemberUpdateRequest, caller: Caller = ANONYMOUS
    ) -> pb.MemberUpdateResponse:
        """Peer URLs of a single member are never used, so changing them is refused."""
        self.auth.check_admin(caller)
        self._check_known(req.ID)
        _check_urls(req.peerURLs)
        raise errors.UnsupportedError()

    def member_promote(
        self, req: pb.MemberPromoteRequest, caller: Caller = ANONYMOUS
    ) -> pb.MemberPromoteResponse:
        """The only member is a voter already."""
        self.auth.check_admin(caller)
        self._check_known(req.ID)
        raise errors.MemberNotLearnerError()

    def _check_known(self, member_id: int) -> None:
        if member_id != self.member_id:
            raise errors.MemberNotFoundError()


def _check_urls(urls) -> None:
    """etcd's types.NewURLs: scheme http(s)/unix(s), host:port, no path."""
    for url in urls:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https", "unix", "unixs") or port is None or parts.path:
            raise errors.MemberBadURLsError()
