"""Who sent a request, as a transport tells the services."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """Who sent a request: its auth token and its client certificate's common name.

    Attributes:
        token: the "token" metadata the client sent (etcd's simple token), if any.
        cert_cn: the common name of the verified TLS client certificate, if any.
    """

    token: str | None = None
    cert_cn: str | None = None


ANONYMOUS = Caller()
