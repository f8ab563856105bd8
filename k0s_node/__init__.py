"""k0s_node: the launcher that runs a control-plane node on k0s-store and k0s-pki."""
