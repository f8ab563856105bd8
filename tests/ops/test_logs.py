"""Logs: zap's JSON lines, --log-level, --log-outputs, and the slow-request
warning, beside a real etcd 3.4 run with --logger=zap and the same flags."""

import json
import logging
import re
import time

import pytest
from harness.processes import subject_kind
from harness.rpc import Client

from k0s_store.api.methods import Method, Shape
from k0s_store.api.rpc_stats import RpcStats, request_summary
from k0s_store.go_duration import format_duration
from k0s_store.ops.logs import ZapJSONFormatter, configure
from k0s_store.proto import rpc_pb2 as pb

ZAP_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})$")
SLOW_FIELDS = {"took", "expected-duration", "prefix", "request", "response"}
WAIT_S = 5.0


def _record(msg: str, level: int = logging.INFO, **fields) -> logging.LogRecord:
    record = logging.LogRecord("k0s_store.test", level, __file__, 42, msg, None, None)
    if fields:
        record.fields = fields
    return record


def test_a_record_is_one_zap_json_line():
    line = ZapJSONFormatter().format(_record("compacted", logging.WARNING, revision=7))
    assert "\n" not in line
    entry = json.loads(line)
    assert list(entry) == ["level", "ts", "caller", "msg", "revision"]  # zap's key order
    assert entry["level"] == "warn" and entry["msg"] == "compacted" and entry["revision"] == 7
    assert ZAP_TS.match(entry["ts"]), entry["ts"]
    assert entry["caller"] == "ops/test_logs.py:42"


def test_durations_print_as_go_prints_them():
    cases = {0: "0s", 1e-9: "1ns", 1.5e-6: "1.5µs", 0.1: "100ms", 1.5: "1.5s", 200: "3m20s"}
    for seconds, text in cases.items():
        assert format_duration(seconds) == text


def test_log_level_filters_and_outputs_write_files(tmp_path):
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure("zap", "warn", [str(first), str(second)])
        log = logging.getLogger("k0s_store.test")
        log.info("not shown")
        log.warning("shown", extra={"fields": {"n": 1}})
        log.error("also shown")
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved
    for path in (first, second):
        entries = [json.loads(line) for line in path.read_text().splitlines()]
        assert [(e["level"], e["msg"]) for e in entries] == [
            ("warn", "shown"),
            ("error", "also shown"),
        ]


def test_a_slow_request_is_logged_with_etcds_fields(caplog):
    put = Method("etcdserverpb.KV", "Put", Shape.UNARY, handler=lambda r: r)
    stats = RpcStats()  # etcd's 100 ms threshold
    [put_stats] = stats.serve({put.path: put}).values()
    request = pb.PutRequest(key=b"k", value=b"secret value", lease=5).SerializeToString()
    response = pb.PutResponse().SerializeToString()
    with caplog.at_level(logging.WARNING, logger="k0s_store.api"):
        put_stats.finished(0, time.monotonic(), request, response)  # fast: not logged
        put_stats.finished(0, time.monotonic() - 0.25, request, response)
    [record] = caplog.records
    assert record.getMessage() == "apply request took too long"
    fields = record.fields
    assert set(fields) == SLOW_FIELDS
    assert fields["expected-duration"] == "100ms" and fields["took"].endswith("ms")
    assert fields["request"] == 'key: "k" lease: 5 value_size: 12'  # never the value itself
    assert fields["response"] == "size:0"
    assert stats.slow_requests.value == 1


def test_txn_summaries_hide_values_too():
    txn = pb.TxnRequest(
        compare=[pb.Compare(key=b"a", target=pb.Compare.VALUE, value=b"hidden")],
        success=[pb.RequestOp(request_put=pb.PutRequest(key=b"a", value=b"hidden too"))],
    )
    text = request_summary(txn)
    assert "hidden" not in text
    assert "value_size: 6" in text and "value_size: 10" in text


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _is_own_range(entry: dict) -> bool:
    return entry.get("prefix") == "read-only range " and entry.get("response", "").startswith(
        "range_response_count:1 "
    )


@pytest.mark.etcd
def test_slow_requests_and_levels_beside_etcd(servers, tmp_path):
    """Both run with zap logs at warn level and a 1 ns warning threshold, to a
    file: every applied request is logged as slow, nothing at info level."""
    started = []
    for kind in ("etcd", subject_kind()):
        log_file = tmp_path / f"{kind}-zap.log"
        flags = [
            "--logger=zap",
            "--log-level=warn",
            f"--log-outputs={log_file}",
            "--experimental-warning-apply-duration=1ns",
        ]
        started.append((servers(kind, extra_args=flags), log_file))
    for server, _ in started:
        server.wait_ready()
        client = Client(server.channel())
        client.call("KV", "Put", pb.PutRequest(key=b"k", value=b"value"))
        client.call("KV", "Range", pb.RangeRequest(key=b"k"))
        client.close()
    found = []
    for _, log_file in started:
        deadline = time.monotonic() + WAIT_S
        while True:
            entries = _json_lines(log_file.read_text())
            slow = [e for e in entries if e["msg"] == "apply request took too long"]
            # A request is logged after its answer: wait for the test's own Range.
            if any(_is_own_range(e) for e in slow) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert {e["level"] for e in entries} <= {"warn", "error"}, entries
        for entry in entries:
            assert {"level", "ts", "caller", "msg"} <= set(entry) and ZAP_TS.match(entry["ts"])
        found.append(slow)
    etcd_slow, our_slow = found
    assert our_slow and etcd_slow
    for etcd_entry, our_entry in zip(etcd_slow, our_slow, strict=False):
        assert set(our_entry) == set(etcd_entry)
        assert our_entry["expected-duration"] == etcd_entry["expected-duration"] == "1ns"
    # The harness' readiness probe finds nothing; the test's own Range finds the key.
    assert any(_is_own_range(e) for e in our_slow), our_slow
    assert any(_is_own_range(e) for e in etcd_slow), etcd_slow
