"""Bounded runs of bench/fuzz.py (atheris): the codec against gogoproto and
the protobuf library, the request path below the transport over a Store.
bench/fuzz.py with a larger -max_total_time is the long run."""

import re
import subprocess
import sys
from pathlib import Path

from k0s_store.mvcc import Store

FUZZ = Path(__file__).resolve().parents[2] / "bench" / "fuzz.py"
_DONE = re.compile(r"Done (\d+) runs")


def _fuzz(tmp_path: Path, target: str, seconds: int, *args: str) -> int:
    """Run a target for `seconds`; the number of inputs it tried."""
    argv = [sys.executable, str(FUZZ), target, *args]
    argv += [f"-max_total_time={seconds}", "-seed=1", f"-artifact_prefix={tmp_path}/"]
    result = subprocess.run(
        argv, cwd=tmp_path, capture_output=True, text=True, timeout=seconds + 60
    )
    # atheris prints an uncaught exception's traceback on stdout, libFuzzer's report on stderr
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    done = _DONE.search(result.stderr)
    assert done, result.stderr[-2000:]
    print(f"\n{target}: {done.group(1)} inputs in {seconds}s")
    return int(done.group(1))


def test_fuzz_codec(tmp_path):
    assert _fuzz(tmp_path, "codec", 2) > 500


def test_fuzz_request_path_leaves_a_consistent_store(tmp_path):
    data_dir = tmp_path / "store"
    data_dir.mkdir()
    assert _fuzz(tmp_path, "requests", 3, f"--data-dir={data_dir}") > 500
    # (none when every check found the head compacted, where HashKV is refused)
    checkpoints = data_dir / "checkpoints"
    text = checkpoints.read_text() if checkpoints.exists() else ""
    revision, digest = (int(x) for x in (text.split() or ["0", "0"])[-2:])
    store = Store(data_dir, fsync=False)  # reopened: it must open and agree
    try:
        assert store.revision >= revision
        if revision > store.compact_revision:
            assert store.hash_kv(revision)[0] == digest
    finally:
        store.close()
