"""Every failure a client can see, as etcd reports it.

One class per failure kind under one base class. Each carries the gRPC
status code name and etcd's exact message: Go clients map errors back to
their typed errors by message text, so the text is part of the API.
The transport turns an `EtcdError` into a gRPC status; nothing below the
transport imports gRPC.
"""


class EtcdError(Exception):
    """A request that etcd would reject."""

    code = "UNKNOWN"  # grpc.StatusCode member name
    message = "etcdserver: unknown error"

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


def _error(name: str, code: str, message: str) -> type[EtcdError]:
    return type(name, (EtcdError,), {"code": code, "message": message, "__doc__": message})


EmptyKeyError = _error("EmptyKeyError", "INVALID_ARGUMENT", "etcdserver: key is not provided")
KeyNotFoundError = _error("KeyNotFoundError", "INVALID_ARGUMENT", "etcdserver: key not found")
ValueProvidedError = _error(
    "ValueProvidedError", "INVALID_ARGUMENT", "etcdserver: value is provided"
)
LeaseProvidedError = _error(
    "LeaseProvidedError", "INVALID_ARGUMENT", "etcdserver: lease is provided"
)
TooManyOpsError = _error(
    "TooManyOpsError", "INVALID_ARGUMENT", "etcdserver: too many operations in txn request"
)
DuplicateKeyError = _error(
    "DuplicateKeyError", "INVALID_ARGUMENT", "etcdserver: duplicate key given in txn request"
)
CompactedError = _error(
    "CompactedError", "OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted"
)
FutureRevisionError = _error(
    "FutureRevisionError",
    "OUT_OF_RANGE",
    "etcdserver: mvcc: required revision is a future revision",
)
NoSpaceError = _error(
    "NoSpaceError", "RESOURCE_EXHAUSTED", "etcdserver: mvcc: database space exceeded"
)
LeaseNotFoundError = _error(
    "LeaseNotFoundError", "NOT_FOUND", "etcdserver: requested lease not found"
)
LeaseExistsError = _error(
    "LeaseExistsError", "FAILED_PRECONDITION", "etcdserver: lease already exists"
)
LeaseTTLTooLargeError = _error(
    "LeaseTTLTooLargeError", "OUT_OF_RANGE", "etcdserver: too large lease TTL"
)
RequestTooLargeError = _error(
    "RequestTooLargeError", "INVALID_ARGUMENT", "etcdserver: request is too large"
)
StoppedError = _error("StoppedError", "UNAVAILABLE", "etcdserver: server stopped")
CorruptError = _error("CorruptError", "DATA_LOSS", "etcdserver: corrupt cluster")
MemberNotFoundError = _error("MemberNotFoundError", "NOT_FOUND", "etcdserver: member not found")
MemberNotLearnerError = _error(
    "MemberNotLearnerError", "FAILED_PRECONDITION", "etcdserver: can only promote a learner member"
)
MemberNotEnoughStartedError = _error(
    "MemberNotEnoughStartedError",
    "FAILED_PRECONDITION",
    "etcdserver: re-configuration failed due to not enough started members",
)
MemberBadURLsError = _error(
    "MemberBadURLsError", "INVALID_ARGUMENT", "etcdserver: given member URLs are invalid"
)
BadLeaderTransfereeError = _error(
    "BadLeaderTransfereeError", "FAILED_PRECONDITION", "etcdserver: bad leader transferee"
)
# grpc-go's answer to a request body it cannot unmarshal (codes.Internal);
# the detail after the colon is the decoder's own text.
MalformedRequestError = _error(
    "MalformedRequestError", "INTERNAL", "grpc: error unmarshalling request"
)
# Not an etcd error: what a single-member store answers to a request that
# only a multi-member etcd cluster could fulfil (adding a member).
UnsupportedError = _error(
    "UnsupportedError", "UNIMPLEMENTED", "k0s-store: not supported by a single-member store"
)

# Auth (etcd's auth store errors as its gRPC layer reports them).
RootUserNotExistError = _error(
    "RootUserNotExistError", "FAILED_PRECONDITION", "etcdserver: root user does not exist"
)
RootRoleNotExistError = _error(
    "RootRoleNotExistError", "FAILED_PRECONDITION", "etcdserver: root user does not have root role"
)
UserAlreadyExistError = _error(
    "UserAlreadyExistError", "FAILED_PRECONDITION", "etcdserver: user name already exists"
)
UserEmptyError = _error("UserEmptyError", "INVALID_ARGUMENT", "etcdserver: user name is empty")
UserNotFoundError = _error(
    "UserNotFoundError", "FAILED_PRECONDITION", "etcdserver: user name not found"
)
RoleAlreadyExistError = _error(
    "RoleAlreadyExistError", "FAILED_PRECONDITION", "etcdserver: role name already exists"
)
RoleNotFoundError = _error(
    "RoleNotFoundError", "FAILED_PRECONDITION", "etcdserver: role name not found"
)
RoleEmptyError = _error("RoleEmptyError", "INVALID_ARGUMENT", "etcdserver: role name is empty")
AuthFailedError = _error(
    "AuthFailedError",
    "INVALID_ARGUMENT",
    "etcdserver: authentication failed, invalid user ID or password",
)
# etcd has no gRPC mapping for this one: its gRPC layer answers UNKNOWN with
# the auth store's own text.
NoPasswordUserError = _error(
    "NoPasswordUserError",
    "UNKNOWN",
    "auth: authentication failed, password was given for no password user",
)
PermissionDeniedError = _error(
    "PermissionDeniedError", "PERMISSION_DENIED", "etcdserver: permission denied"
)
RoleNotGrantedError = _error(
    "RoleNotGrantedError", "FAILED_PRECONDITION", "etcdserver: role is not granted to the user"
)
PermissionNotGrantedError = _error(
    "PermissionNotGrantedError",
    "FAILED_PRECONDITION",
    "etcdserver: permission is not granted to the role",
)
AuthNotEnabledError = _error(
    "AuthNotEnabledError", "FAILED_PRECONDITION", "etcdserver: authentication is not enabled"
)
InvalidAuthTokenError = _error(
    "InvalidAuthTokenError", "UNAUTHENTICATED", "etcdserver: invalid auth token"
)
InvalidAuthMgmtError = _error(
    "InvalidAuthMgmtError", "INVALID_ARGUMENT", "etcdserver: invalid auth management"
)

# The auth store's own texts. etcd's Maintenance service returns auth errors
# untranslated, which grpc-go reports as UNKNOWN with this text.
AuthStoreError = _error("AuthStoreError", "UNKNOWN", "auth: unknown error")
_AUTH_STORE_TEXTS = {
    UserEmptyError: "auth: user name is empty",
    UserNotFoundError: "auth: user not found",
    PermissionDeniedError: "auth: permission denied",
    InvalidAuthTokenError: "auth: invalid auth token",
}


def untranslated(error: EtcdError) -> EtcdError:
    """`error` as etcd reports it where it skips its gRPC translation."""
    text = _AUTH_STORE_TEXTS.get(type(error))
    return error if text is None else AuthStoreError(text)
