"""Pure-Python twins of the compiled core in src_ext/. Import via k0s_store.core."""
