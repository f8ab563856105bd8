"""The store side of auth: etcd's bucket layout byte for byte, the permission
intervals (etcd's range_perm_cache) and simple tokens."""

import struct

import bcrypt
import lmdb
import pytest

from k0s_store import errors
from k0s_store.mvcc import Store
from k0s_store.mvcc.auth_perms import KeyPermissions
from k0s_store.mvcc.auth_tokens import SimpleTokens
from k0s_store.proto import auth_pb2

READ, WRITE, READWRITE = (
    auth_pb2.Permission.READ,
    auth_pb2.Permission.WRITE,
    auth_pb2.Permission.READWRITE,
)


def perm(kind: int, key: bytes, range_end: bytes = b"") -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=kind, key=key, range_end=range_end)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "data", fsync=False, bcrypt_cost=4)
    yield s
    s.close()


def _raw(path) -> dict[bytes, dict[bytes, bytes]]:
    """Every record of etcd's three auth buckets, read with plain py-lmdb."""
    env = lmdb.open(str(path), max_dbs=16, readonly=True, lock=False)
    try:
        out = {}
        with env.begin() as txn:
            for name in (b"auth", b"authUsers", b"authRoles"):
                out[name] = dict(txn.cursor(db=env.open_db(name, txn=txn)))
        return out
    finally:
        env.close()


def test_buckets_hold_etcds_records(tmp_path, store):
    auth = store.auth
    auth.user_add("root", "pw", no_password=False)
    auth.user_grant_role("root", "root")
    auth.role_add("app")
    auth.role_grant_permission("app", perm(READWRITE, b"/b/", b"/b0"))
    auth.role_grant_permission("app", perm(READ, b"/a"))
    auth.user_add("cn-user", "", no_password=True)
    auth.enable()
    store.close()
    raw = _raw(tmp_path / "data")
    # Revision 1 at creation, +1 for each of the 6 changes; enabling adds none.
    assert raw[b"auth"] == {b"authEnabled": b"\x01", b"authRevision": struct.pack(">Q", 7)}
    root = auth_pb2.User.FromString(raw[b"authUsers"][b"root"])
    assert (root.name, list(root.roles)) == (b"root", ["root"])
    assert root.password.startswith(b"$2a$04$") and bcrypt.checkpw(b"pw", root.password)
    # gogoproto writes the options message even when empty, as etcd does.
    assert raw[b"authUsers"][b"cn-user"] == b"\x0a\x07cn-user\x22\x02\x08\x01"
    role = auth_pb2.Role.FromString(raw[b"authRoles"][b"app"])
    assert [(p.key, p.range_end, p.permType) for p in role.keyPermission] == [
        (b"/a", b"", READ),
        (b"/b/", b"/b0", READWRITE),
    ]


def test_state_survives_reopen_and_refusals_change_nothing(tmp_path):
    s = Store(tmp_path / "data", fsync=False, bcrypt_cost=4)
    s.auth.user_add("root", "pw", no_password=False)
    with pytest.raises(errors.RootRoleNotExistError):
        s.auth.enable()
    with pytest.raises(errors.UserAlreadyExistError):
        s.auth.user_add("root", "other", no_password=False)
    revision = s.auth.revision
    s.close()
    s = Store(tmp_path / "data", fsync=False, bcrypt_cost=4)
    try:
        assert s.auth.revision == revision == 2
        assert s.auth.user_list() == ["root"] and not s.auth.enabled
    finally:
        s.close()


# The worked example of auth_perms.py, and the forms of permission.
@pytest.mark.parametrize(
    ("perms", "key", "range_end", "allowed"),
    [
        ([perm(READ, b"a", b"c"), perm(READ, b"c", b"e")], b"b", b"d", True),
        ([perm(READ, b"a", b"c"), perm(READ, b"c", b"e")], b"b", b"f", False),
        ([perm(READ, b"a", b"c"), perm(READ, b"d", b"e")], b"b", b"e", False),  # gap [c, d)
        ([perm(READ, b"x")], b"x", b"", True),
        ([perm(READ, b"x")], b"x", b"x\0\0", False),
        ([perm(READ, b"x")], b"x", b"x\0", True),
        ([perm(READ, b"x")], b"y", b"", False),
        ([perm(READ, b"k", b"\0")], b"zzz", b"", True),  # from k on
        ([perm(READ, b"k", b"\0")], b"k", b"\0", True),
        ([perm(READ, b"k", b"\0")], b"j", b"\0", False),
        ([perm(READ, b"/p/", b"/p0")], b"/p/", b"\0", False),
        ([perm(WRITE, b"/p/", b"/p0")], b"/p/x", b"", False),  # WRITE is not READ
        ([perm(READWRITE, b"/p/", b"/p0")], b"/p/x", b"", True),
    ],
)
def test_read_permissions(perms, key, range_end, allowed):
    assert KeyPermissions(perms).allows(key, range_end, write=False) is allowed


def test_write_permissions_are_separate():
    p = KeyPermissions([perm(READ, b"a", b"z"), perm(WRITE, b"m")])
    assert p.allows(b"m", b"", write=True)
    assert not p.allows(b"n", b"", write=True)
    assert p.allows(b"n", b"", write=False)


def test_tokens_expire_unless_used_and_die_with_their_user():
    now = [1000.0]
    tokens = SimpleTokens(ttl=10, clock=lambda: now[0])
    alice, bob = tokens.assign("alice", 7), tokens.assign("bob", 8)
    prefix, index = alice.split(".")
    assert len(prefix) == 16 and prefix.isalpha() and index == "7"
    now[0] += 9
    assert tokens.user_of(alice) == "alice"  # renewed until 1019
    now[0] += 9
    assert tokens.user_of(alice) == "alice"
    assert tokens.user_of(bob) is None  # unused for 18 s
    tokens.invalidate_user("alice")
    assert tokens.user_of(alice) is None
    carol = tokens.assign("carol", 9)
    tokens.clear()
    assert tokens.user_of(carol) is None
    assert tokens.user_of("not.a-token") is None
