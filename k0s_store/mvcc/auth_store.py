"""Users, roles and permissions (etcd 3.4's auth/store.go), kept in etcd's own buckets.

Three named DBs of the store's LMDB environment hold exactly what etcd's
bbolt buckets hold, so a snapshot exporter copies them as they are:

- `auth`       b"authEnabled" -> b"\\x01" (enabled) or b"\\x00";
               b"authRevision" -> 8-byte big-endian auth revision (1 in a
               fresh store; every change of users or roles adds one)
- `authUsers`  user name -> marshalled authpb.User (password: the bcrypt hash,
               never the password; roles sorted)
- `authRoles`  role name -> marshalled authpb.Role (permissions sorted by key)

Changes run as jobs of the store's group-commit writer (durable when they
return). Each job checks first and writes after, so a refused change leaves
the batch untouched. Once the batch is committed, the job's `AuthState` (an
immutable snapshot of everything, with each user's merged permissions) is
installed; readers take `state` once and never lock.

Passwords are hashed outside the writer (bcrypt is slow on purpose), with
etcd's cost (10, `--bcrypt-cost`) and Go's "$2a$" form. As Go's bcrypt,
only the first 72 bytes of a password count.
"""

import bisect
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import bcrypt

from k0s_store import errors
from k0s_store.backend import Backend, Databases
from k0s_store.core import lmdb
from k0s_store.mvcc.auth_perms import KeyPermissions
from k0s_store.mvcc.auth_tokens import DEFAULT_TOKEN_TTL, SimpleTokens
from k0s_store.proto import auth_pb2

ENABLED_KEY = b"authEnabled"
REVISION_KEY = b"authRevision"
ENABLED, DISABLED = b"\x01", b"\x00"
ROOT = "root"  # the user, and the role, that may do everything

DEFAULT_BCRYPT_COST = 10
MIN_BCRYPT_COST, MAX_BCRYPT_COST = 4, 31
BCRYPT_MAX_PASSWORD_BYTES = 72

_REVISION = struct.Struct(">Q")


class AuthState(NamedTuple):
    """Everything the permission checks read, as of one commit."""

    enabled: bool
    revision: int
    users: dict[str, auth_pb2.User]
    roles: dict[str, auth_pb2.Role]
    perms: dict[str, KeyPermissions]  # user name -> merged permissions of its roles
    root_users: frozenset[str]  # users holding the root role


def initialize(txn: lmdb.Transaction, dbs: Databases) -> None:
    """Give a fresh store auth revision 1, as etcd does (no-op otherwise)."""
    if txn.get(REVISION_KEY, db=dbs.auth) is None:
        txn.put(REVISION_KEY, _REVISION.pack(1), db=dbs.auth)


def load(txn: lmdb.Transaction, dbs: Databases) -> AuthState:
    """The auth state stored in `txn`."""
    users = {k.decode(): auth_pb2.User.FromString(v) for k, v in txn.cursor(db=dbs.auth_users)}
    roles = {k.decode(): auth_pb2.Role.FromString(v) for k, v in txn.cursor(db=dbs.auth_roles)}
    perms = {
        name: KeyPermissions(
            perm for role in user.roles if role in roles for perm in roles[role].keyPermission
        )
        for name, user in users.items()
    }
    revision = txn.get(REVISION_KEY, db=dbs.auth)
    return AuthState(
        enabled=txn.get(ENABLED_KEY, db=dbs.auth) == ENABLED,
        revision=_REVISION.unpack(revision)[0] if revision else 0,
        users=users,
        roles=roles,
        perms=perms,
        root_users=frozenset(name for name, user in users.items() if ROOT in user.roles),
    )


class AuthStore:
    """etcd's auth store over the store's LMDB environment.

    Args:
        backend: the LMDB environment (its auth DBs are read at start).
        write: runs a job in the group-commit writer and returns its result
            (`Writer.call`); the job gets the batch's WriteTxn.
        token_ttl: seconds a simple token lives after its last use.
        bcrypt_cost: bcrypt's cost for new password hashes (out of range: 10).
    """

    def __init__(
        self,
        backend: Backend,
        write: Callable[[Callable], Any],
        *,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        bcrypt_cost: int = DEFAULT_BCRYPT_COST,
    ) -> None:
        self._write_job = write
        if not MIN_BCRYPT_COST <= bcrypt_cost <= MAX_BCRYPT_COST:
            bcrypt_cost = DEFAULT_BCRYPT_COST
        self.bcrypt_cost = bcrypt_cost
        self.tokens = SimpleTokens(token_ttl)
        with backend.read() as txn:
            self.state = load(txn, backend.dbs)
        self.enabled = self.state.enabled  # the hot path's one check

    # -- reads ---------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The auth revision (etcd's authRevision)."""
        return self.state.revision

    def user_get(self, name: str) -> list[str]:
        """The roles of user `name`."""
        user = self.state.users.get(name)
        if user is None:
            raise errors.UserNotFoundError()
        return list(user.roles)

    def user_list(self) -> list[str]:
        """Every user name, in byte order."""
        return sorted(self.state.users, key=str.encode)

    def role_get(self, name: str) -> list[auth_pb2.Permission]:
        """The permissions of role `name`."""
        role = self.state.roles.get(name)
        if role is None:
            raise errors.RoleNotFoundError()
        return list(role.keyPermission)

    def role_list(self) -> list[str]:
        """Every role name, in byte order."""
        return sorted(self.state.roles, key=str.encode)

    def has_role(self, user: str, role: str) -> bool:
        """Whether `user` exists and holds `role`."""
        u = self.state.users.get(user)
        return u is not None and role in u.roles

    # -- authentication ------------------------------------------------------

    def check_password(self, name: str, password: str) -> None:
        """etcd's CheckPassword: raise unless auth is on and `password` is `name`'s."""
        state = self.state
        if not state.enabled:
            raise errors.AuthNotEnabledError()
        user = state.users.get(name)
        if user is None:
            raise errors.AuthFailedError()
        if user.options.no_password:
            raise errors.NoPasswordUserError()
        try:
            ok = bcrypt.checkpw(_password_bytes(password), user.password)
        except ValueError:  # not a bcrypt hash
            ok = False
        if not ok:
            raise errors.AuthFailedError()

    def authenticate(self, name: str, index: int) -> str:
        """A new simple token for `name` (its password already checked)."""
        state = self.state
        if not state.enabled:
            raise errors.AuthNotEnabledError()
        user = state.users.get(name)
        if user is None or user.options.no_password:
            raise errors.AuthFailedError()
        return self.tokens.assign(name, index)

    # -- changes -------------------------------------------------------------

    def enable(self) -> None:
        """Turn auth on; needs a user "root" holding the role "root"."""

        def change(txn, dbs) -> bool:
            if txn.get(ENABLED_KEY, db=dbs.auth) == ENABLED:
                return False
            root = _get_user(txn, dbs, ROOT)
            if root is None:
                raise errors.RootUserNotExistError()
            if ROOT not in root.roles:
                raise errors.RootRoleNotExistError()
            txn.put(ENABLED_KEY, ENABLED, db=dbs.auth)
            return True

        self._write(change)

    def disable(self) -> None:
        """Turn auth off (a new auth revision; every token is dropped)."""

        def change(txn, dbs) -> bool:
            if txn.get(ENABLED_KEY, db=dbs.auth) != ENABLED:
                return False
            txn.put(ENABLED_KEY, DISABLED, db=dbs.auth)
            _bump_revision(txn, dbs)
            return True

        self._write(change, after=self.tokens.clear)

    def user_add(self, name: str, password: str, no_password: bool) -> None:
        """Add a user (no roles); its password is stored as a bcrypt hash."""
        if not name:
            raise errors.UserEmptyError()
        hashed = b"" if no_password else self._hash(password)

        def change(txn, dbs) -> bool:
            if _get_user(txn, dbs, name) is not None:
                raise errors.UserAlreadyExistError()
            options = auth_pb2.UserAddOptions(no_password=no_password)
            _put_user(txn, dbs, auth_pb2.User(name=name.encode(), password=hashed, options=options))
            return _bump_revision(txn, dbs)

        self._write(change)

    def user_delete(self, name: str) -> None:
        """Delete a user and its tokens; "root" cannot go while auth is on."""
        if self.enabled and name == ROOT:
            raise errors.InvalidAuthMgmtError()

        def change(txn, dbs) -> bool:
            if _get_user(txn, dbs, name) is None:
                raise errors.UserNotFoundError()
            txn.delete(name.encode(), db=dbs.auth_users)
            return _bump_revision(txn, dbs)

        self._write(change, after=lambda: self.tokens.invalidate_user(name))

    def user_change_password(self, name: str, password: str) -> None:
        """Replace a user's password hash and drop its tokens."""
        hashed = self._hash(password)

        def change(txn, dbs) -> bool:
            user = _get_user(txn, dbs, name)
            if user is None:
                raise errors.UserNotFoundError()
            user.password = hashed
            _put_user(txn, dbs, user)
            return _bump_revision(txn, dbs)

        self._write(change, after=lambda: self.tokens.invalidate_user(name))

    def user_grant_role(self, name: str, role: str) -> None:
        """Grant `role` (which must exist, except "root") to a user; granting twice is a no-op."""

        def change(txn, dbs) -> bool:
            user = _get_user(txn, dbs, name)
            if user is None:
                raise errors.UserNotFoundError()
            if role != ROOT and _get_role(txn, dbs, role) is None:
                raise errors.RoleNotFoundError()
            if role in user.roles:
                return False
            roles = sorted([*user.roles, role])
            del user.roles[:]
            user.roles.extend(roles)
            _put_user(txn, dbs, user)
            return _bump_revision(txn, dbs)

        self._write(change)

    def user_revoke_role(self, name: str, role: str) -> None:
        """Revoke a granted role; root keeps the root role while auth is on."""
        if self.enabled and name == ROOT and role == ROOT:
            raise errors.InvalidAuthMgmtError()

        def change(txn, dbs) -> bool:
            user = _get_user(txn, dbs, name)
            if user is None:
                raise errors.UserNotFoundError()
            if role not in user.roles:
                raise errors.RoleNotGrantedError()
            _put_user(txn, dbs, _without_role(user, role))
            return _bump_revision(txn, dbs)

        self._write(change)

    def role_add(self, name: str) -> None:
        """Add a role with no permissions."""
        if not name:
            raise errors.RoleEmptyError()

        def change(txn, dbs) -> bool:
            if _get_role(txn, dbs, name) is not None:
                raise errors.RoleAlreadyExistError()
            _put_role(txn, dbs, auth_pb2.Role(name=name.encode()))
            return _bump_revision(txn, dbs)

        self._write(change)

    def role_delete(self, name: str) -> None:
        """Delete a role and revoke it from every user; "root" stays while auth is on."""
        if self.enabled and name == ROOT:
            raise errors.InvalidAuthMgmtError()

        def change(txn, dbs) -> bool:
            if _get_role(txn, dbs, name) is None:
                raise errors.RoleNotFoundError()
            users = [auth_pb2.User.FromString(v) for _, v in txn.cursor(db=dbs.auth_users)]
            txn.delete(name.encode(), db=dbs.auth_roles)
            for user in users:
                if name in user.roles:
                    _put_user(txn, dbs, _without_role(user, name))
            return _bump_revision(txn, dbs)

        self._write(change)

    def role_grant_permission(self, name: str, perm: auth_pb2.Permission) -> None:
        """Add a permission to a role, or change the type of the one with the same range.

        As etcd, only the first permission whose key is not below `perm.key`
        is compared: permissions stay sorted by key.
        """

        def change(txn, dbs) -> bool:
            role = _get_role(txn, dbs, name)
            if role is None:
                raise errors.RoleNotFoundError()
            keys = [p.key for p in role.keyPermission]
            i = bisect.bisect_left(keys, perm.key)
            existing = role.keyPermission[i] if i < len(keys) else None
            if existing and existing.key == perm.key and existing.range_end == perm.range_end:
                existing.permType = perm.permType
            else:
                added = auth_pb2.Permission(
                    permType=perm.permType, key=perm.key, range_end=perm.range_end
                )
                ordered = sorted([*role.keyPermission, added], key=lambda p: p.key)
                del role.keyPermission[:]
                role.keyPermission.extend(ordered)
            _put_role(txn, dbs, role)
            return _bump_revision(txn, dbs)

        self._write(change)

    def role_revoke_permission(self, name: str, key: bytes, range_end: bytes) -> None:
        """Remove the permissions of a role on exactly [key, range_end)."""

        def change(txn, dbs) -> bool:
            role = _get_role(txn, dbs, name)
            if role is None:
                raise errors.RoleNotFoundError()
            kept = [p for p in role.keyPermission if p.key != key or p.range_end != range_end]
            if len(kept) == len(role.keyPermission):
                raise errors.PermissionNotGrantedError()
            _put_role(txn, dbs, auth_pb2.Role(name=role.name, keyPermission=kept))
            return _bump_revision(txn, dbs)

        self._write(change)

    # -- plumbing ------------------------------------------------------------

    def _hash(self, password: str) -> bytes:
        salt = bcrypt.gensalt(rounds=self.bcrypt_cost, prefix=b"2a")
        return bcrypt.hashpw(_password_bytes(password), salt)

    def _write(self, change: Callable, after: Callable[[], None] | None = None) -> None:
        """Run `change(txn, dbs)` in the writer; if it changed something (True),
        install the new state (then run `after`) once the batch is durable."""

        def job(w) -> None:
            if not change(w.txn, w.dbs):
                return
            state = load(w.txn, w.dbs)
            w.after_commit.append(lambda: self._install(state, after))

        self._write_job(job)

    def _install(self, state: AuthState, after: Callable[[], None] | None) -> None:
        """(writer thread) Publish `state`; readers take one or the other, never a mix."""
        self.state = state
        self.enabled = state.enabled
        if after is not None:
            after()


def _password_bytes(password: str) -> bytes:
    return password.encode()[:BCRYPT_MAX_PASSWORD_BYTES]


def _bump_revision(txn: lmdb.Transaction, dbs: Databases) -> bool:
    """etcd's commitRevision: the auth revision plus one. Returns True (a change)."""
    stored = txn.get(REVISION_KEY, db=dbs.auth)
    revision = _REVISION.unpack(stored)[0] if stored else 0
    txn.put(REVISION_KEY, _REVISION.pack(revision + 1), db=dbs.auth)
    return True


def _get_user(txn: lmdb.Transaction, dbs: Databases, name: str) -> auth_pb2.User | None:
    value = txn.get(name.encode(), db=dbs.auth_users) if name else None  # LMDB has no b"" key
    return None if value is None else auth_pb2.User.FromString(value)


def _put_user(txn: lmdb.Transaction, dbs: Databases, user: auth_pb2.User) -> None:
    txn.put(user.name, user.SerializeToString(), db=dbs.auth_users)


def _get_role(txn: lmdb.Transaction, dbs: Databases, name: str) -> auth_pb2.Role | None:
    value = txn.get(name.encode(), db=dbs.auth_roles) if name else None
    return None if value is None else auth_pb2.Role.FromString(value)


def _put_role(txn: lmdb.Transaction, dbs: Databases, role: auth_pb2.Role) -> None:
    txn.put(role.name, role.SerializeToString(), db=dbs.auth_roles)


def _without_role(user: auth_pb2.User, role: str) -> auth_pb2.User:
    return auth_pb2.User(
        name=user.name,
        password=user.password,
        roles=[r for r in user.roles if r != role],
        options=user.options if user.HasField("options") else None,
    )
