"""etcd's Auth service: enable/disable, Authenticate, users and roles (etcd 3.4).

Every method gets the caller. As in etcd, management calls need the root
role once auth is enabled (`AuthGuard.check_admin`); UserGet and RoleGet
also answer a user about itself and its roles; Authenticate needs no role
but a token sent along must be valid. Responses carry a header at the
current store revision, as etcd's.
"""

from k0s_store.api.auth_guard import AuthGuard
from k0s_store.api.caller import Caller
from k0s_store.api.header import Header
from k0s_store.errors import EtcdError
from k0s_store.proto import rpc_pb2 as pb


class AuthService:
    """The Auth service over a store.

    Args:
        store: the MVCC store (users, roles and tokens are its `auth`).
        header: fills response headers.
        guard: the permission checks.
    """

    def __init__(self, store, header: Header, guard: AuthGuard) -> None:
        self.store = store
        self.auth = store.auth
        self.header = header
        self.guard = guard

    def _header(self) -> pb.ResponseHeader:
        return self.header.message(self.store.revision)

    def auth_enable(self, req: pb.AuthEnableRequest, caller: Caller) -> pb.AuthEnableResponse:
        """Turn auth on (needs user root with role root); already on: nothing to do."""
        self.guard.check_admin(caller)
        self.auth.enable()
        return pb.AuthEnableResponse(header=self._header())

    def auth_disable(self, req: pb.AuthDisableRequest, caller: Caller) -> pb.AuthDisableResponse:
        """Turn auth off; every token becomes invalid."""
        self.guard.check_admin(caller)
        self.auth.disable()
        return pb.AuthDisableResponse(header=self._header())

    def authenticate(self, req: pb.AuthenticateRequest, caller: Caller) -> pb.AuthenticateResponse:
        """Check a password and hand out a simple token."""
        self.auth.check_password(req.name, req.password)
        self.guard.user(caller)
        token = self.auth.authenticate(req.name, self.store.revision)
        return pb.AuthenticateResponse(header=self._header(), token=token)

    def user_add(self, req: pb.AuthUserAddRequest, caller: Caller) -> pb.AuthUserAddResponse:
        """Add a user (with no_password, one that only a certificate can name)."""
        self.guard.check_admin(caller)
        self.auth.user_add(req.name, req.password, req.options.no_password)
        return pb.AuthUserAddResponse(header=self._header())

    def user_get(self, req: pb.AuthUserGetRequest, caller: Caller) -> pb.AuthUserGetResponse:
        """A user's roles: for root, or for the user itself."""
        try:
            self.guard.check_admin(caller)
        except EtcdError:
            if req.name != (self.guard.user(caller) or ""):
                raise
        return pb.AuthUserGetResponse(header=self._header(), roles=self.auth.user_get(req.name))

    def user_list(self, req: pb.AuthUserListRequest, caller: Caller) -> pb.AuthUserListResponse:
        """Every user name."""
        self.guard.check_admin(caller)
        return pb.AuthUserListResponse(header=self._header(), users=self.auth.user_list())

    def user_delete(
        self, req: pb.AuthUserDeleteRequest, caller: Caller
    ) -> pb.AuthUserDeleteResponse:
        """Delete a user (not root while auth is on)."""
        self.guard.check_admin(caller)
        self.auth.user_delete(req.name)
        return pb.AuthUserDeleteResponse(header=self._header())

    def user_change_password(
        self, req: pb.AuthUserChangePasswordRequest, caller: Caller
    ) -> pb.AuthUserChangePasswordResponse:
        """Set a user's password; its tokens become invalid."""
        self.guard.check_admin(caller)
        self.auth.user_change_password(req.name, req.password)
        return pb.AuthUserChangePasswordResponse(header=self._header())

    def user_grant_role(
        self, req: pb.AuthUserGrantRoleRequest, caller: Caller
    ) -> pb.AuthUserGrantRoleResponse:
        """Grant a role to a user."""
        self.guard.check_admin(caller)
        self.auth.user_grant_role(req.user, req.role)
        return pb.AuthUserGrantRoleResponse(header=self._header())

    def user_revoke_role(
        self, req: pb.AuthUserRevokeRoleRequest, caller: Caller
    ) -> pb.AuthUserRevokeRoleResponse:
        """Revoke a role from a user (root keeps root while auth is on)."""
        self.guard.check_admin(caller)
        self.auth.user_revoke_role(req.name, req.role)
        return pb.AuthUserRevokeRoleResponse(header=self._header())

    def role_add(self, req: pb.AuthRoleAddRequest, caller: Caller) -> pb.AuthRoleAddResponse:
        """Add a role with no permission."""
        self.guard.check_admin(caller)
        self.auth.role_add(req.name)
        return pb.AuthRoleAddResponse(header=self._header())

    def role_get(self, req: pb.AuthRoleGetRequest, caller: Caller) -> pb.AuthRoleGetResponse:
        """A role's permissions: for root, or for a user holding the role."""
        try:
            self.guard.check_admin(caller)
        except EtcdError:
            user = self.guard.user(caller)
            if user is None or not self.auth.has_role(user, req.role):
                raise
        return pb.AuthRoleGetResponse(header=self._header(), perm=self.auth.role_get(req.role))

    def role_list(self, req: pb.AuthRoleListRequest, caller: Caller) -> pb.AuthRoleListResponse:
        """Every role name."""
        self.guard.check_admin(caller)
        return pb.AuthRoleListResponse(header=self._header(), roles=self.auth.role_list())

    def role_delete(
        self, req: pb.AuthRoleDeleteRequest, caller: Caller
    ) -> pb.AuthRoleDeleteResponse:
        """Delete a role and revoke it from every user (not root while auth is on)."""
        self.guard.check_admin(caller)
        self.auth.role_delete(req.role)
        return pb.AuthRoleDeleteResponse(header=self._header())

    def role_grant_permission(
        self, req: pb.AuthRoleGrantPermissionRequest, caller: Caller
    ) -> pb.AuthRoleGrantPermissionResponse:
        """Grant READ, WRITE or READWRITE on a key, a range or a prefix to a role."""
        self.guard.check_admin(caller)
        self.auth.role_grant_permission(req.name, req.perm)
        return pb.AuthRoleGrantPermissionResponse(header=self._header())

    def role_revoke_permission(
        self, req: pb.AuthRoleRevokePermissionRequest, caller: Caller
    ) -> pb.AuthRoleRevokePermissionResponse:
        """Remove a role's permission on exactly [key, range_end)."""
        self.guard.check_admin(caller)
        self.auth.role_revoke_permission(req.role, req.key, req.range_end)
        return pb.AuthRoleRevokePermissionResponse(header=self._header())
