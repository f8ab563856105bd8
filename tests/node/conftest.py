"""Fixtures of the launcher tests: launchers on fresh data dirs, stopped at teardown."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from launcher import Launcher


@pytest.fixture
def launchers(tmp_path: Path):
    """Factory ``launchers(spec=None, name="n1", extra_argv=())`` -> a Launcher, not started."""
    made: list[Launcher] = []

    def make(spec: dict | None = None, name: str = "n1", extra_argv=()) -> Launcher:
        workdir = tmp_path / name
        workdir.mkdir(exist_ok=True)
        launcher = Launcher(workdir, spec, tuple(extra_argv))
        made.append(launcher)
        return launcher

    yield make
    for launcher in made:
        launcher.kill()
