"""Where our checks are stricter than etcd 3.4's (which leaks data there), and
how the caller is identified. The rest is proved against etcd in
tests/differential/test_diff_auth.py."""

import pytest

from k0s_store import errors
from k0s_store.api.auth_guard import AuthGuard
from k0s_store.api.caller import ANONYMOUS, Caller
from k0s_store.mvcc import Store
from k0s_store.mvcc.types import PutRequest, RangeRequest, TxnRequest
from k0s_store.proto import auth_pb2


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "data", fsync=False, bcrypt_cost=4)
    a = s.auth
    a.user_add("root", "pw", no_password=False)
    a.user_grant_role("root", "root")
    a.role_add("app")
    a.role_grant_permission(
        "app",
        auth_pb2.Permission(
            permType=auth_pb2.Permission.READWRITE, key=b"/app/", range_end=b"/app0"
        ),
    )
    a.user_add("alice", "pw", no_password=False)
    a.user_grant_role("alice", "app")
    a.enable()
    yield s
    s.close()


def test_nested_txn_ops_are_checked(store):
    guard = AuthGuard(store, client_cert_auth=False)
    inner_outside = TxnRequest(success=(PutRequest(b"/etc/passwd", b"x"),))
    inner_inside = TxnRequest(success=(RangeRequest(b"/app/a"),))
    guard.require_txn("alice", TxnRequest(success=(inner_inside,)))
    with pytest.raises(errors.PermissionDeniedError):  # etcd 3.4 lets this through
        guard.require_txn("alice", TxnRequest(success=(inner_inside,), failure=(inner_outside,)))


def test_watch_from_a_key_needs_read_on_everything_after_it(store):
    guard = AuthGuard(store, client_cert_auth=False)
    alice = Caller(token=store.auth.authenticate("alice", 1))
    assert guard.watch_refusal(alice, b"/app/", b"/app0") == ""
    # etcd 3.4 checks only the key itself for range_end "\0".
    assert guard.watch_refusal(alice, b"/app/", b"\0") == (
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    )
    assert guard.watch_refusal(ANONYMOUS, b"/app/", b"/app0") == (
        "rpc error: code = InvalidArgument desc = etcdserver: user name is empty"
    )


def test_certificate_names_the_user_only_with_client_cert_auth(store):
    by_cert = Caller(cert_cn="alice")
    assert AuthGuard(store, client_cert_auth=True).user(by_cert) == "alice"
    assert AuthGuard(store, client_cert_auth=False).user(by_cert) is None
    token = store.auth.authenticate("root", 1)
    both = Caller(token=token, cert_cn="alice")  # a token wins over the certificate
    assert AuthGuard(store, client_cert_auth=True).user(both) == "root"
    with pytest.raises(errors.InvalidAuthTokenError):
        AuthGuard(store, client_cert_auth=True).user(Caller(token="forged.1", cert_cn="alice"))


def test_nothing_is_checked_while_auth_is_off_and_no_token_is_sent(store):
    store.auth.disable()
    guard = AuthGuard(store, client_cert_auth=False)
    assert not guard.applies(ANONYMOUS)
    assert guard.applies(Caller(token="stale.3"))  # etcd still rejects a stale token
    guard.require_txn(None, TxnRequest(success=(PutRequest(b"/etc/passwd", b"x"),)))
