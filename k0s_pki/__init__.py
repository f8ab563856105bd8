"""k0s_pki: every certificate of a small Kubernetes control plane, checked and rotated.

Modules, one idea each: :mod:`keys` (key types), :mod:`certs` (issuing),
:mod:`catalog` (the kubeadm + etcd set as data), :mod:`layout` (where files
live), :mod:`files` (atomic, crash-safe writes), :mod:`kubeconfig`,
:mod:`provision` (``init``), :mod:`rotate` (leaves), :mod:`ca_rotation`
(CAs and the SA key, without downtime), :mod:`check` (expiration, verify),
:mod:`external` (outside CAs, CSRs), :mod:`cli` (``k0s-pki``).
"""
