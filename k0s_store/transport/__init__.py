"""Transports carrying etcd's gRPC API to the services in `k0s_store.api`.

grpcio reads its experiment switches from the environment when its core
starts, so they are set here, before any transport module imports grpc.
`-event_engine_listener` serves accepted connections with grpc core's
iomgr TCP server instead of the EventEngine listener: measured with
bench/compare.py's loads (4 client processes, 2 cores), a no-op unary RPC
costs about 195 us of server CPU instead of about 240 us, with higher
throughput. A GRPC_EXPERIMENTS given by the operator is left as is.
"""

import os

os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_listener")
