"""Fixtures of the PKI tests: a configuration and an initialised PKI directory."""

import pytest

from k0s_pki.catalog import ClusterConfig
from k0s_pki.layout import Layout
from k0s_pki.provision import plan_init

CONFIG = ClusterConfig(
    node_name="node1",
    advertise_address="192.0.2.10",
    service_cidr="10.96.0.0/12",
    cluster_domain="cluster.local",
    extra_sans=("api.example.com",),
)


@pytest.fixture
def config() -> ClusterConfig:
    """The test cluster's settings (ECDSA P-256 keys)."""
    return CONFIG


@pytest.fixture
def layout(tmp_path, config) -> Layout:
    """A PKI directory initialised by ``init``: ``<tmp>/pki``, kubeconfigs in ``<tmp>``."""
    layout = Layout.at(tmp_path / "pki")
    plan_init(layout, config).apply()
    return layout
