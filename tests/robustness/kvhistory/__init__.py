"""Record what etcd clients saw, then check it: histories of KV operations
(`history`, `recorder`), a model of etcd's KV with revisions (`model`), a
linearizability checker (`linearizability`), watch validators (`watches`),
the faults injected meanwhile (`faults`) and one recorded run end to end
(`runner`). Modelled on etcd's
tests/robustness; everything talks to a server process over gRPC only."""
