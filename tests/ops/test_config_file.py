"""--config-file: etcd's YAML keys, refused unknown keys and bad values, and
no silent disagreement with the command line."""

import sys
import textwrap

import pytest
from harness.ports import free_port
from harness.processes import ServerProcess, etcd_available, subject_kind
from ops_helpers import get, scrape

from k0s_store import cli
from k0s_store.ops.config_file import ConfigError

# The keys of etcd 3.4's etcd.conf.yml.sample (values made local), which
# etcd reads: every one must be accepted.
ETCD_SAMPLE = """\
name: 'default'
data-dir: {data_dir}
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
listen-peer-urls: http://127.0.0.1:{peer_port}
listen-client-urls: http://127.0.0.1:{client_port}
max-snapshots: 5
max-wals: 5
cors:
initial-advertise-peer-urls: http://127.0.0.1:{peer_port}
advertise-client-urls: http://127.0.0.1:{client_port}
discovery:
discovery-fallback: 'proxy'
discovery-proxy:
discovery-srv:
initial-cluster: default=http://127.0.0.1:{peer_port}
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: true
enable-pprof: true
proxy: 'off'
proxy-failure-wait: 5000
proxy-refresh-interval: 30000
proxy-dial-timeout: 1000
proxy-write-timeout: 5000
proxy-read-timeout: 0
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
debug: false
logger: zap
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
"""


def _write(tmp_path, text: str, name: str = "etcd.yml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _sample(tmp_path) -> str:
    return ETCD_SAMPLE.format(
        data_dir=tmp_path / "data", client_port=free_port(), peer_port=free_port()
    )


def test_etcds_sample_config_is_accepted(tmp_path):
    path = _write(tmp_path, _sample(tmp_path))
    args = cli.parse_serve_args(["serve", f"--config-file={path}"])
    assert args.data_dir == str(tmp_path / "data")
    assert args.auto_compaction_mode == "periodic" and args.auto_compaction_retention == "1"
    assert args.log_outputs == ("stderr",) and args.logger == "zap"
    assert args.client_cert_auth is False and args.quota_backend_bytes == 0


def test_values_take_the_flags_types(tmp_path):
    path = _write(
        tmp_path,
        """\
        quota-backend-bytes: 8589934592
        max-txn-ops: 256
        unsafe-no-fsync: true
        experimental-watch-progress-notify-interval: 5000000000  # ns, as Go marshals durations
        log-level: warn
        log-outputs: [stdout, stderr]
        listen-metrics-urls: http://127.0.0.1:2381
        auto-compaction-mode: revision
        auto-compaction-retention: 1000
        client-transport-security:
          cert-file: /pki/server.crt
          key-file: /pki/server.key
          trusted-ca-file: /pki/ca.crt
          client-cert-auth: true
        """,
    )
    args = cli.parse_serve_args(["serve", f"--config-file={path}"])
    assert args.quota_backend_bytes == 8 * 1024**3 and args.max_txn_ops == 256
    assert args.unsafe_no_fsync is True
    assert args.experimental_watch_progress_notify_interval == 5.0
    assert args.log_level == "warn" and args.log_outputs == ("stdout", "stderr")
    assert args.listen_metrics_urls == "http://127.0.0.1:2381"
    assert (args.auto_compaction_mode, args.auto_compaction_retention) == ("revision", "1000")
    assert (args.cert_file, args.key_file, args.trusted_ca_file) == (
        "/pki/server.crt",
        "/pki/server.key",
        "/pki/ca.crt",
    )
    assert args.client_cert_auth is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no-such-key: 1\n", "unknown key no-such-key"),
        (
            "client-transport-security:\n  crt-file: x\n",
            "unknown key client-transport-security.crt-file",
        ),
        ("quota-backend-bytes: lots\n", "bad value for quota-backend-bytes: 'lots'"),
        ("unsafe-no-fsync: maybe\n", "bad value for unsafe-no-fsync: 'maybe'"),
        ("log-level: loud\n", "bad value for log-level: 'loud'"),
        ("auto-compaction-mode: hourly\n", "bad value for auto-compaction-mode: 'hourly'"),
        (
            "experimental-watch-progress-notify-interval: 5s\n",
            "bad value for experimental-watch-progress-notify-interval: '5s'",
        ),
        ("listen-client-urls: {a: b}\n", "bad value for listen-client-urls"),
        ("- just\n- a list\n", "expected a mapping"),
        ("key: [unclosed\n", "line 2"),
        ("config-file: other.yml\n", "unknown key config-file"),
    ],
)
def test_a_bad_file_is_refused_in_one_line_naming_the_key(tmp_path, capsys, text, message):
    path = _write(tmp_path, text)
    assert cli.main(["serve", f"--config-file={path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_missing_file_is_refused(tmp_path, capsys):
    assert cli.main(["serve", f"--config-file={tmp_path / 'absent.yml'}"]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_a_flag_must_agree_with_the_file(tmp_path, capsys):
    path = _write(
        tmp_path, "data-dir: /from/file\nquota-backend-bytes: 1024\nlog-outputs: [stdout]\n"
    )
    assert cli.main(["serve", f"--config-file={path}", "--data-dir=/from/flag"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--data-dir=/from/flag" in err and "data-dir: /from/file" in err, err
    # The same value given both ways is no ambiguity; flags the file lacks apply.
    args = cli.parse_serve_args(
        [
            "serve",
            f"--config-file={path}",
            "--quota-backend-bytes=1024",
            "--log-outputs=stdout",
            "--max-txn-ops=7",
        ]
    )
    assert (args.data_dir, args.quota_backend_bytes, args.max_txn_ops) == ("/from/file", 1024, 7)


def test_bad_auto_compaction_retention_is_refused():
    with pytest.raises(ConfigError, match="auto-compaction-retention"):
        cli.parse_serve_args(
            ["serve", "--auto-compaction-mode=revision", "--auto-compaction-retention=1h"]
        )
    with pytest.raises(ConfigError, match="auto-compaction-retention"):
        cli.parse_serve_args(["serve", "--auto-compaction-retention=soon"])


class _ConfigFileServer(ServerProcess):
    """A server whose whole configuration is one file (`config` set before start)."""

    config = None

    def argv(self) -> list[str]:
        if self.kind == "etcd":
            return ["etcd", f"--config-file={self.config}"]
        return [sys.executable, "-m", "k0s_store", "serve", f"--config-file={self.config}"]


@pytest.mark.etcd
def test_etcd_and_we_serve_from_the_same_config_file(tmp_path):
    """The same sample file (ports aside), read by a real etcd and by us."""
    if not etcd_available():
        pytest.skip("etcd/etcdctl binaries not installed")
    started = []
    try:
        for index, kind in enumerate(("etcd", subject_kind())):
            name = f"{index}-{kind}"  # both may be etcd (K0S_DIFF_AGAINST=etcd)
            server = _ConfigFileServer(kind, tmp_path / name)
            metrics_url = f"http://127.0.0.1:{free_port()}"
            text = ETCD_SAMPLE.format(
                data_dir=server.data_dir, client_port=server.port, peer_port=server.peer_port
            )
            text += f"listen-metrics-urls: {metrics_url}\nquota-backend-bytes: 104857600\n"
            server.config = _write(
                tmp_path, text.replace("quota-backend-bytes: 0\n", ""), f"{name}.yml"
            )
            started.append((server.start(), metrics_url))
        for server, metrics_url in started:
            server.wait_ready()
            assert get(metrics_url, "/health").status == 200
            samples, _ = scrape(metrics_url)
            assert samples[("etcd_server_quota_backend_bytes", frozenset())] == 104857600
    finally:
        for server, _ in started:
            server.stop()


def test_an_unwritable_log_output_is_refused(tmp_path, capsys):
    assert cli.main(["serve", f"--log-outputs={tmp_path / 'missing' / 'x.log'}"]) == 2
    assert cli.main(["serve", f"--log-outputs={tmp_path}"]) == 2  # a directory
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all("--log-outputs" in line for line in errors)
