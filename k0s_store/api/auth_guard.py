"""The permission checks etcd 3.4 makes on every service (etcdserver/apply_auth.go,
v3_server.go, v3rpc/maintenance.go and watch.go, server.go).

Who calls (etcd's AuthInfoFromCtx): the user a "token" names, else, with
--client-cert-auth, the common name of the client certificate; else nobody.
A token naming nobody (unknown, expired, or auth disabled since) fails with
"invalid auth token" on every call that looks at the caller, even with auth
disabled, as etcd does.

What each call needs while auth is enabled:
- Range, Watch create: READ on the range. Put: WRITE on the key, WRITE on
  every key already attached to its lease, READ on the key for prev_kv.
  DeleteRange: WRITE on the range (and READ for prev_kv). Txn: READ on every
  compare, the checks above for the ops of both branches.
- LeaseRevoke: WRITE on every key attached to the lease.
- The root role: Auth management (user/role changes and lists, enable,
  disable), Defragment, Hash, HashKV, member changes. UserGet needs it unless
  a user asks about itself, RoleGet unless the user holds the role.
- The caller only (a valid token or none): Compact, LeaseGrant, Alarm,
  Authenticate.
- Nothing: Status, MoveLeader, MemberList, LeaseKeepAlive, LeaseTimeToLive,
  LeaseLeases.

Two checks are stricter than etcd 3.4's, which leak data: ops of nested txns
are checked like the top-level ones (etcd skips them), and a watch on "every
key from K on" needs READ on that whole range (etcd checks K only).
"""

from k0s_store import errors
from k0s_store.api.caller import Caller
from k0s_store.mvcc.auth_store import AuthState
from k0s_store.mvcc.types import DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest


class AuthGuard:
    """etcd's auth checks over a store.

    Args:
        store: the MVCC store (its `auth` holds users, roles and tokens; its
            leases tell which keys a lease holds).
        client_cert_auth: --client-cert-auth: a certificate's CN names the
            user when the client sends no token.
    """

    def __init__(self, store, client_cert_auth: bool) -> None:
        self.store = store
        self.auth = store.auth
        self.client_cert_auth = client_cert_auth

    def applies(self, caller: Caller) -> bool:
        """Whether a call must be checked at all: auth is on, or a token needs validating.

        The hot path's only cost while auth is off and clients send no token.
        """
        return self.auth.enabled or caller.token is not None

    def user(self, caller: Caller) -> str | None:
        """The calling user (None: nobody); an unknown token raises "invalid auth token"."""
        if caller.token is not None:
            user = self.auth.tokens.user_of(caller.token)
            if user is None:
                raise errors.InvalidAuthTokenError()
            return user
        if self.client_cert_auth and caller.cert_cn:
            return caller.cert_cn
        return None

    # -- the checks: check_* resolve the caller, require_* take the resolved user ----

    def check_admin(self, caller: Caller) -> str | None:
        """Root role needed (etcd's IsAdminPermitted); returns the user."""
        user = self.user(caller)
        require_root(self.auth.state, user)
        return user

    def require_range(self, user: str | None, key: bytes, range_end: bytes) -> None:
        """READ on [key, range_end)."""
        _require(self.auth.state, user, key, range_end, write=False)

    def require_put(self, user: str | None, req: PutRequest) -> None:
        """WRITE on the key and on the lease's keys; READ on the key for prev_kv."""
        state = self.auth.state
        _require(state, user, req.key, b"", write=True)
        self._require_lease_keys(state, user, req.lease)
        if req.prev_kv:
            _require(state, user, req.key, b"", write=False)

    def require_delete_range(self, user: str | None, req: DeleteRangeRequest) -> None:
        """WRITE on the range; READ on it too for prev_kv."""
        state = self.auth.state
        _require(state, user, req.key, req.range_end, write=True)
        if req.prev_kv:
            _require(state, user, req.key, req.range_end, write=False)

    def require_txn(self, user: str | None, req: TxnRequest) -> None:
        """READ on every compare; every op of both branches, nested txns included."""
        _require_txn(self.auth.state, user, req)

    def check_lease_revoke(self, caller: Caller, lease_id: int) -> None:
        """WRITE on every key attached to the lease."""
        user = self.user(caller)
        self._require_lease_keys(self.auth.state, user, lease_id)

    def watch_refusal(self, caller: Caller, key: bytes, range_end: bytes) -> str:
        """Why a watch on [key, range_end) is refused (etcd's cancel reason), or "".

        etcd words the reason as grpc-go prints a status error; an auth error
        other than a bad token or no user reads "permission denied".
        """
        try:
            _require(self.auth.state, self.user(caller), key, range_end, write=False)
        except (errors.InvalidAuthTokenError, errors.UserEmptyError) as e:
            return _status_text(e)
        except errors.EtcdError:
            return _status_text(errors.PermissionDeniedError())
        return ""

    def _require_lease_keys(self, state: AuthState, user: str | None, lease_id: int) -> None:
        """etcd's checkLeasePuts: WRITE on each key the lease holds (none if no lease)."""
        if not lease_id or not state.enabled:
            return
        for key in self.store.lease_time_to_live(lease_id, keys=True).keys:
            _require(state, user, key, b"", write=True)


def _status_text(e: errors.EtcdError) -> str:
    """grpc-go's text of a status error: "rpc error: code = CodeName desc = message"."""
    code = "".join(part.capitalize() for part in e.code.split("_"))
    return f"rpc error: code = {code} desc = {e.message}"


def require_root(state: AuthState, user: str | None) -> None:
    """etcd's IsAdminPermitted."""
    if not state.enabled:
        return
    if not user:
        raise errors.UserEmptyError()
    if user not in state.users:
        raise errors.UserNotFoundError()
    if user not in state.root_users:
        raise errors.PermissionDeniedError()


def _require(state: AuthState, user: str | None, key: bytes, range_end: bytes, write: bool):
    """etcd's isOpPermitted: raise unless `user` may read/write [key, range_end)."""
    if not state.enabled:
        return
    if not user:
        raise errors.UserEmptyError()
    perms = state.perms.get(user)
    if perms is None:
        raise errors.PermissionDeniedError()
    if user in state.root_users:
        return
    if not perms.allows(key, range_end, write):
        raise errors.PermissionDeniedError()


def _require_txn(state: AuthState, user: str | None, req: TxnRequest) -> None:
    for compare in req.compare:
        _require(state, user, compare.key, compare.range_end, write=False)
    for op in (*req.success, *req.failure):
        if isinstance(op, RangeRequest):
            _require(state, user, op.key, op.range_end, write=False)
        elif isinstance(op, PutRequest):
            _require(state, user, op.key, b"", write=True)
        elif isinstance(op, DeleteRangeRequest):
            if op.prev_kv:
                _require(state, user, op.key, op.range_end, write=False)
            _require(state, user, op.key, op.range_end, write=True)
        elif isinstance(op, TxnRequest):
            _require_txn(state, user, op)
