"""What kubeadm does once its API server is up, so that admin.conf works at once.

``admin.conf``'s user is in group ``kubeadm:cluster-admins``; kubeadm binds
that group to the ``cluster-admin`` ClusterRole during init, with
``super-admin.conf`` (group ``system:masters``, allowed everything). The
launcher creates the same binding the same way; it already existing is fine.
"""

import json
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from k0s_pki.kubeconfig import parse

BINDING_NAME = "kubeadm:cluster-admins"
_BINDINGS = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
REQUEST_TIMEOUT_S = 10.0


def cluster_admins_binding() -> dict:
    """The ClusterRoleBinding kubeadm creates (group -> cluster-admin)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": BINDING_NAME},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": BINDING_NAME}
        ],
    }


def ensure_cluster_admins(super_admin_conf: Path) -> bool:
    """Create the binding with super-admin.conf's credentials.

    Returns:
        True if it was created, False if it already existed.

    Raises:
        OSError: the API server could not be reached or refused (the caller retries).
    """
    conf = parse(super_admin_conf.read_bytes(), str(super_admin_conf))
    context = ssl.create_default_context(cadata=conf.ca_pem.decode())
    # ssl loads a client certificate from files only: a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="k0s-node-") as tmp:
        cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        cert.write_bytes(conf.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(conf.key_pem)
        context.load_cert_chain(cert, key)
    request = urllib.request.Request(
        conf.server + _BINDINGS,
        data=json.dumps(cluster_admins_binding()).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=REQUEST_TIMEOUT_S):
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 409:  # AlreadyExists
            return False
        raise OSError(f"creating ClusterRoleBinding {BINDING_NAME}: HTTP {exc.code}") from None
