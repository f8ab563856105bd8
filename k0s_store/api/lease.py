"""etcd's Lease service: Grant, Revoke, KeepAlive, TimeToLive, Leases."""

from k0s_store import errors
from k0s_store.api.auth_guard import AuthGuard
from k0s_store.api.caller import ANONYMOUS, Caller
from k0s_store.api.header import Header
from k0s_store.proto import rpc_pb2 as pb


class LeaseService:
    """The Lease service over a store.

    Args:
        store: the MVCC store (it owns the leases and their expiry).
        header: fills response headers.
        auth: the permission checks (Grant needs a valid token or none,
            Revoke WRITE on the lease's keys, the others nothing, as in etcd 3.4).
    """

    def __init__(self, store, header: Header, auth: AuthGuard) -> None:
        self.store = store
        self.header = header
        self.auth = auth

    def grant(self, req: pb.LeaseGrantRequest, caller: Caller = ANONYMOUS) -> pb.LeaseGrantResponse:
        """Grant a lease (ID 0: the store picks one; TTL raised to the minimum)."""
        self.auth.user(caller)
        g = self.store.lease_grant(req.TTL, req.ID)
        return pb.LeaseGrantResponse(header=self.header.message(g.revision), ID=g.id, TTL=g.ttl)

    def revoke(
        self, req: pb.LeaseRevokeRequest, caller: Caller = ANONYMOUS
    ) -> pb.LeaseRevokeResponse:
        """Revoke a lease and delete its keys."""
        self.auth.check_lease_revoke(caller, req.ID)
        revision = self.store.lease_revoke(req.ID)
        return pb.LeaseRevokeResponse(header=self.header.message(revision))

    def keep_alive(self, req: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse:
        """Renew a lease; TTL 0 tells the client the lease is gone (etcd's answer)."""
        # The header is taken before the renewal, as etcd does, so the revision
        # cannot be later than a revocation the client has not seen yet.
        header = self.header.message(self.store.revision)
        try:
            ttl = self.store.lease_renew(req.ID)
        except errors.LeaseNotFoundError:
            ttl = 0
        return pb.LeaseKeepAliveResponse(header=header, ID=req.ID, TTL=ttl)

    def time_to_live(self, req: pb.LeaseTimeToLiveRequest) -> pb.LeaseTimeToLiveResponse:
        """Remaining and granted TTL of a lease (TTL -1 when it does not exist)."""
        try:
            t = self.store.lease_time_to_live(req.ID, keys=req.keys)
        except errors.LeaseNotFoundError:
            return pb.LeaseTimeToLiveResponse(
                header=self.header.message(self.store.revision), ID=req.ID, TTL=-1
            )
        return pb.LeaseTimeToLiveResponse(
            header=self.header.message(t.revision),
            ID=t.id,
            TTL=t.ttl,
            grantedTTL=t.granted_ttl,
            keys=t.keys,
        )

    def leases(self, req: pb.LeaseLeasesRequest) -> pb.LeaseLeasesResponse:
        """Every live lease."""
        revision, ids = self.store.lease_list()
        return pb.LeaseLeasesResponse(
            header=self.header.message(revision), leases=[pb.LeaseStatus(ID=i) for i in ids]
        )
