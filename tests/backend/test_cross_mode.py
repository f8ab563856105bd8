"""One data directory opened alternately by the compiled core (our LMDB
binding) and the pure twin (py-lmdb), in separate processes, over a seeded
random workload: each process must find exactly the state the other left
(every key-value at every revision, the revisions, HashKV), and the
alternating history must end where a single-mode run of the same workload
ends. A hot key written past 1,024 revisions a round puts history chunks
(index_history) through both modes' reads, writes and compactions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from k0s_store.core import PURE

WORKER = Path(__file__).with_name("cross_mode_worker.py")
ROOT = Path(__file__).parents[2]
ROUNDS = 6


def _run(data_dir: Path, seed: int, first: int, last: int, pure: bool) -> dict:
    env = dict(os.environ, K0S_STORE_PURE="1" if pure else "0")
    out = subprocess.run(
        [sys.executable, str(WORKER), str(data_dir), str(seed), str(first), str(last)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(PURE, reason="sets each process's mode itself: runs in the compiled pass")
@pytest.mark.parametrize("seed", [1, 2])
def test_one_data_dir_alternately_compiled_and_pure(tmp_path, seed):
    data = tmp_path / "alternating"
    left = None
    for round_ in range(ROUNDS):
        pure = round_ % 2 == 1
        result = _run(data, seed, round_, round_, pure)
        assert result["mode"] == ("pure" if pure else "compiled")
        if left is not None:
            assert result["before"] == left, f"round {round_} found another state"
        left = result["after"]
    assert left["revision"] > ROUNDS * 20 and left["compact"] > 0
    assert sum(len(kvs) for kvs in left["history"].values()) > 100
    assert left["chunks"] > 0  # the hot key's older records were read from chunks too

    single = _run(tmp_path / "single", seed, 0, ROUNDS - 1, pure=False)
    assert single["after"] == left
