"""Compiled core, built from src_ext/ by setup.py. Import via k0s_store.core."""
