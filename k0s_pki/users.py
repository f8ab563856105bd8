"""``kubeconfig create``: a kubeconfig for a user, signed by the cluster CA."""

from datetime import timedelta

from k0s_pki import certs
from k0s_pki.authority import load_authority
from k0s_pki.catalog import ClusterConfig, ca_spec
from k0s_pki.errors import PkiError
from k0s_pki.files import read_file
from k0s_pki.keys import generate_key, private_key_pem
from k0s_pki.kubeconfig import Kubeconfig, parse, render
from k0s_pki.layout import Layout


def user_kubeconfig(
    layout: Layout, config: ClusterConfig, user: str, groups: list[str], validity: timedelta
) -> bytes:
    """Issue a client certificate for ``user`` and wrap it in a kubeconfig.

    Args:
        layout: the PKI directory (its ``ca`` signs).
        config: key type, cluster name; server URL when there is no admin.conf.
        user: the certificate's CN (Kubernetes' user name).
        groups: its O attributes (Kubernetes' groups).
        validity: lifetime of the certificate.

    Returns:
        The kubeconfig file content (server taken from ``admin.conf`` if present).
    """
    if not user or any(ord(c) < 32 for c in user):
        raise PkiError(f"invalid user name {user!r}")
    config.validate()
    authority = load_authority(layout, ca_spec("ca"))
    server, cluster = config.api_server_url(), config.cluster_name
    admin = layout.kubeconfig("admin.conf")
    if admin.exists():
        conf = parse(read_file(admin), str(admin))
        server, cluster = conf.server, conf.cluster_name
    key = generate_key(config.key_type)
    subject = certs.subject_name(user, groups)
    chain = authority.issue(key.public_key(), subject, [], certs.Usage.CLIENT, validity)
    conf = Kubeconfig(
        cluster, server, authority.bundle_pem(), user, certs.certs_pem(chain), private_key_pem(key)
    )
    return render(conf)
