"""Run the real `etcdctl` 3.4 against a server process."""

import json
import os
import queue
import re
import subprocess
import threading

from .processes import ServerProcess

CTL_TIMEOUT_S = 30.0

# Fields that differ between two etcd members, in `-w json` and `-w fields` output.
_MEMBER_FIELDS = re.compile(
    r'"(cluster_id|member_id|raft_term|ClusterID|MemberID|RaftTerm)"( ?: ?)\d+'
)


class Etcdctl:
    """`etcdctl` bound to one server (TLS flags added when it serves TLS)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def argv(self, *args: str) -> list[str]:
        argv = ["etcdctl", f"--endpoints={self.server.url}", "--command-timeout=10s"]
        if self.server.tls:
            tls = self.server.tls
            argv += [f"--cacert={tls.ca}", f"--cert={tls.client_cert}", f"--key={tls.client_key}"]
        return argv + list(args)

    def env(self) -> dict[str, str]:
        return {**os.environ, "ETCDCTL_API": "3"}

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = CTL_TIMEOUT_S,
    ) -> subprocess.CompletedProcess:
        """Run to completion; with `check`, a non-zero exit fails with stderr."""
        result = subprocess.run(
            self.argv(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"etcdctl {' '.join(args)}: {result.stderr}"
        return result

    def out(self, *args: str, stdin: str | None = None) -> str:
        """stdout of a successful run."""
        return self.run(*args, stdin=stdin).stdout

    def json(self, *args: str) -> dict:
        """Parsed `-w json` output."""
        return json.loads(self.out("-w", "json", *args))

    def spawn(self, *args: str) -> subprocess.Popen:
        """Start a long-running command (watch, lock, elect, keep-alive)."""
        return subprocess.Popen(
            self.argv(*args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            start_new_session=True,
        )


def without_member_fields(json_text: str) -> str:
    """etcdctl output with cluster_id, member_id and raft_term zeroed."""
    return _MEMBER_FIELDS.sub(lambda match: f'"{match.group(1)}"{match.group(2)}0', json_text)


class LineReader:
    """Lines of a child's stdout, readable with a timeout (a thread feeds a queue)."""

    def __init__(self, stream) -> None:
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))

    def readline(self, timeout: float = 10.0) -> str | None:
        """The next line, or None after `timeout` seconds."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def read_lines(self, count: int, timeout: float = 10.0) -> list[str]:
        """`count` lines; fails if they do not all come in time."""
        lines = []
        for _ in range(count):
            line = self.readline(timeout)
            assert line is not None, f"only {len(lines)} of {count} lines arrived: {lines}"
            lines.append(line)
        return lines
