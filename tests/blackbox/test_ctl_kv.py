"""etcdctl put/get/del/txn/watch/compaction: the same commands against the real
etcd and the subject must print the same thing."""

import signal
import time

import pytest
from harness.etcdctl import Etcdctl, LineReader, without_member_fields

pytestmark = pytest.mark.etcd


class BothCtl:
    """Runs each etcdctl command on etcd, then on the subject, and compares."""

    def __init__(self, pair) -> None:
        self.reference = Etcdctl(pair.reference_server)
        self.subject = Etcdctl(pair.subject_server)

    def same(self, *args: str, stdin: str | None = None) -> str:
        reference = self.reference.run(*args, stdin=stdin, check=False)
        subject = self.subject.run(*args, stdin=stdin, check=False)
        ref_out, sub_out = (without_member_fields(r.stdout) for r in (reference, subject))
        assert (sub_out, _errors(subject.stderr), subject.returncode) == (
            ref_out,
            _errors(reference.stderr),
            reference.returncode,
        ), f"etcdctl {' '.join(args)}"
        return ref_out


def _errors(stderr: str) -> list[str]:
    """The `Error: ...` lines (the client's retry logs carry times and ports)."""
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


@pytest.fixture
def ctl(pair) -> BothCtl:
    return BothCtl(pair)


def _fill(ctl: BothCtl) -> None:
    for key, value in [("a", "1"), ("b", "2"), ("b1", "3"), ("b2", "4"), ("c", "5"), ("a", "6")]:
        ctl.same("put", key, value)


def test_put_flags(ctl):
    ctl.same("put", "k", "v1")
    ctl.same("put", "k", "v2", "--prev-kv")
    ctl.same("put", "k", "--ignore-value", "--prev-kv")
    ctl.same("put", "k", "v3", "--ignore-lease")
    ctl.same("put", "missing", "--ignore-value")
    ctl.same("put", "k", "v", "--lease=1234abcd")
    ctl.same("-w", "json", "put", "k", "v4", "--prev-kv")
    ctl.same("get", "k", "-w", "json")


@pytest.mark.parametrize(
    "flags",
    [
        ["b", "--prefix"],
        ["b", "--from-key"],
        ["", "--from-key"],
        ["a", "--prefix", "--limit=0"],
        ["", "--prefix", "--limit=2"],
        ["a", "--rev=3"],
        ["a", "--rev=1"],
        ["a", "--rev=100"],
        ["", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"],
        ["", "--prefix", "--sort-by=VALUE", "--order=ASCEND"],
        ["", "--prefix", "--sort-by=CREATE", "--order=DESCEND"],
        ["", "--prefix", "--sort-by=VERSION", "--order=DESCEND"],
        ["", "--prefix", "--sort-by=KEY", "--order=DESCEND"],
        ["", "--prefix", "--keys-only"],
        ["", "--prefix", "--count-only", "-w", "json"],
        ["", "--prefix", "--print-value-only"],
        ["b", "c"],
        ["", "--prefix", "-w", "json"],
        ["a", "-w", "fields"],
        ["", "--prefix", "--consistency=s"],
    ],
    ids=lambda flags: " ".join(flags),
)
def test_get_flags(ctl, flags):
    _fill(ctl)
    ctl.same("get", *flags)


def test_del_flags(ctl):
    _fill(ctl)
    ctl.same("del", "a", "--prev-kv")
    ctl.same("del", "b", "--prefix")
    ctl.same("del", "zz")
    ctl.same("del", "c", "--from-key", "--prev-kv")
    ctl.same("get", "", "--prefix", "-w", "json")


def test_txn_from_stdin(ctl):
    _fill(ctl)
    script = 'mod("a") > "0"\nvalue("b") = "2"\n\nput x yes\nget a\ndel b1\n\nput x no\n\n'
    ctl.same("txn", stdin=script)
    ctl.same("txn", "-w", "json", stdin='version("a") = "1"\n\nput y 1\n\nget a --prefix\n\n')
    ctl.same("txn", "--interactive", stdin='create("c") = "5"\n\nput c 9\n\ndel c\n\n')
    ctl.same("get", "", "--prefix")


def test_compaction_physical(ctl):
    _fill(ctl)
    ctl.same("compaction", "3", "--physical")
    ctl.same("get", "a", "--rev=2")
    ctl.same("get", "a", "--rev=3")
    ctl.same("compaction", "2")


def test_watch_prefix_rev_prev_kv(ctl):
    _fill(ctl)
    outputs = []
    for side in (ctl.reference, ctl.subject):
        watcher = side.spawn("watch", "b", "--prefix", "--rev=2", "--prev-kv")
        reader = LineReader(watcher.stdout)
        time.sleep(0.5)
        side.out("put", "b1", "new")
        side.out("del", "b2")
        side.out("put", "c", "ignored")
        lines = []
        while (line := reader.readline(1.5)) is not None:
            lines.append(line)
        watcher.send_signal(signal.SIGINT)
        watcher.wait(10)
        outputs.append(lines)
    assert outputs[1] == outputs[0]
    assert outputs[0][:3] == ["PUT", "b", "2"]
