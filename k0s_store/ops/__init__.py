"""Operating the store: metrics, health, logs, config file, auto-compaction.

These sit beside the command line, above the transports: they read the
store and the RPC counters, and are wired together by `k0s_store.cli`.
"""
