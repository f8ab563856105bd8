"""etcd's Maintenance service: Status, Alarm, Defragment, Hash, HashKV, MoveLeader, Snapshot.

The single member is always
the leader; raft indexes are reported as the store revision, which grows
with every write as etcd's applied index does.
"""

from collections.abc import Iterator

from k0s_store import errors
from k0s_store.api.auth_guard import AuthGuard
from k0s_store.api.caller import ANONYMOUS, Caller
from k0s_store.api.header import Header
from k0s_store.api.settings import Settings
from k0s_store.proto import rpc_pb2 as pb
from k0s_store.snapshot import Member, snapshot_writer
from k0s_store.snapshot.stream import snapshot_chunks

_GET, _DEACTIVATE = pb.AlarmRequest.GET, pb.AlarmRequest.DEACTIVATE


class MaintenanceService:
    """The Maintenance service over a store.

    Auth as etcd 3.4: Defragment, Hash and HashKV need the root role; Alarm a
    valid token or none (their auth errors untranslated, as etcd's); Status
    and MoveLeader nothing.
    """

    def __init__(self, store, header: Header, settings: Settings, auth: AuthGuard) -> None:
        self.store = store
        self.header = header
        self.settings = settings
        self.auth = auth

    def status(self, req: pb.StatusRequest) -> pb.StatusResponse:
        """Version, sizes, leader (this member), raft progress and active alarms."""
        st = self.store.status()
        return pb.StatusResponse(
            header=self.header.message(st.revision),
            version=self.settings.version,
            dbSize=st.db_size,
            dbSizeInUse=st.db_size_in_use,
            leader=self.header.member_id,
            raftIndex=st.revision,
            raftAppliedIndex=st.revision,
            raftTerm=self.header.raft_term,
            errors=[_alarm_text(m) for m in self._alarm_members(st.alarms)],
        )

    def alarm(self, req: pb.AlarmRequest, caller: Caller = ANONYMOUS) -> pb.AlarmResponse:
        """List alarms, or disarm NOSPACE; etcd's answer carries no header.

        As in etcd, DEACTIVATE names the member whose alarm it clears
        (etcdctl takes it from the list). ACTIVATE answers with no alarm:
        only the store raises NOSPACE, when it is full.
        """
        try:
            self.auth.user(caller)
        except errors.EtcdError as e:
            raise errors.untranslated(e) from e
        members = [m for m in self._alarm_members() if req.alarm in (pb.NONE, m.alarm)]
        if req.action == _GET:
            return pb.AlarmResponse(alarms=members)
        if req.action == _DEACTIVATE and req.alarm == pb.NOSPACE and members:
            if req.memberID != self.header.member_id:
                return pb.AlarmResponse()
            self.store.disarm_nospace()
            return pb.AlarmResponse(alarms=members)
        return pb.AlarmResponse()

    def defragment(
        self, req: pb.DefragmentRequest, caller: Caller = ANONYMOUS
    ) -> pb.DefragmentResponse:
        """Give free pages back to the file system (etcd's answer has no header)."""
        self._check_admin(caller)
        self.store.defragment()
        return pb.DefragmentResponse()

    def hash_kv(self, req: pb.HashKVRequest, caller: Caller = ANONYMOUS) -> pb.HashKVResponse:
        """etcd's hash of the key history up to a revision (0: the current one)."""
        self._check_admin(caller)
        hash_, compact_revision, revision = self.store.hash_kv(req.revision)
        return pb.HashKVResponse(
            header=self.header.message(revision), hash=hash_, compact_revision=compact_revision
        )

    def hash(self, req: pb.HashRequest, caller: Caller = ANONYMOUS) -> pb.HashResponse:
        """A hash of the whole key space.

        etcd hashes its bolt file, which no other server can reproduce; the
        HashKV hash at the current revision serves the same purpose (members
        agree iff their data agrees).
        """
        self._check_admin(caller)
        hash_, _, revision = self.store.hash_kv(0)
        return pb.HashResponse(header=self.header.message(revision), hash=hash_)

    def snapshot(
        self, req: pb.SnapshotRequest, caller: Caller = ANONYMOUS
    ) -> Iterator[pb.SnapshotResponse]:
        """The store as an etcd snapshot file (bbolt, etcd's buckets), streamed from
        one read transaction while writes go on; etcd's messages carry no header.
        Admin only, as Hash."""
        self._check_admin(caller)
        s = self.settings
        member = Member(self.header.member_id, s.name, s.peer_urls, s.client_urls)
        with self.store.read_view() as view:
            for remaining, blob in snapshot_chunks(snapshot_writer(view, member)):
                yield pb.SnapshotResponse(remaining_bytes=remaining, blob=blob)

    def move_leader(self, req: pb.MoveLeaderRequest) -> pb.MoveLeaderResponse:
        """Leadership can only "move" to this member, which already has it."""
        if req.targetID != self.header.member_id:
            raise errors.BadLeaderTransfereeError()
        return pb.MoveLeaderResponse()

    def _check_admin(self, caller: Caller) -> None:
        try:
            self.auth.check_admin(caller)
        except errors.EtcdError as e:
            raise errors.untranslated(e) from e

    def _alarm_members(self, alarms: list[int] | None = None) -> list[pb.AlarmMember]:
        if alarms is None:
            alarms = self.store.alarms()
        return [pb.AlarmMember(memberID=self.header.member_id, alarm=a) for a in alarms]


def _alarm_text(m: pb.AlarmMember) -> str:
    """etcd's Status.errors entry for an alarm (gogoproto's compact text form)."""
    return f"memberID:{m.memberID} alarm:{pb.AlarmType.Name(m.alarm)} "
