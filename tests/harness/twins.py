"""Both twins of a compiled-core module, for the tests that must cover each.

They import `k0s_store.pure.<name>` and `k0s_store._ext.<name>` directly
(not through k0s_store.core), so both are tested whatever K0S_STORE_PURE says.
"""

import importlib
from types import ModuleType

import pytest

KINDS = ("pure", "compiled")


def twin(name: str, kind: str) -> ModuleType:
    """The pure twin or the compiled module `name`; a missing build fails the test."""
    if kind == "pure":
        return importlib.import_module(f"k0s_store.pure.{name}")
    try:
        return importlib.import_module(f"k0s_store._ext.{name}")
    except ImportError:
        pytest.fail(f"compiled {name} not built: run `pip install -e .`")


def twin_fixture(name: str):
    """A fixture named `name` giving that module, once pure and once compiled."""

    @pytest.fixture(params=KINDS, name=name)
    def fixture(request) -> ModuleType:
        return twin(name, request.param)

    return fixture
