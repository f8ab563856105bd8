"""Client listen URLs and TLS settings, read the way etcd reads them.

etcd's --listen-client-urls takes comma-separated URLs:
``http://host:port`` (plain), ``https://host:port`` (TLS),
``unix://path`` and ``unixs://path`` (a unix socket, plain or TLS; the
path is everything after ``//``, relative to the working directory unless
it starts with ``/``). IPv6 hosts are bracketed: ``http://[::1]:2379``.
"""

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc

_SECURE_SCHEMES = {"https": True, "unixs": True, "http": False, "unix": False}


@dataclass(frozen=True)
class Listener:
    """One address to serve on.

    Attributes:
        url: the URL as given.
        address: the address in grpcio's syntax ("host:port" or "unix:path").
        secure: whether it serves TLS.
    """

    url: str
    address: str
    secure: bool

    @property
    def is_unix(self) -> bool:
        return self.address.startswith("unix:")


@dataclass(frozen=True)
class TLSFiles:
    """etcd's client TLS flags: --cert-file, --key-file, --trusted-ca-file, --client-cert-auth."""

    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False

    @property
    def empty(self) -> bool:
        return not (self.cert_file or self.key_file)

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials; client certificates are required with --client-cert-auth."""
        key = Path(self.key_file).read_bytes()
        cert = Path(self.cert_file).read_bytes()
        ca = Path(self.trusted_ca_file).read_bytes() if self.trusted_ca_file else None
        return grpc.ssl_server_credentials(
            [(key, cert)],
            root_certificates=ca,
            require_client_auth=self.client_cert_auth,
        )


def parse_listen_urls(urls: str, tls: TLSFiles) -> list[Listener]:
    """Parse a comma-separated URL list; ValueError with etcd's wording when one is unusable."""
    listeners = []
    for url in (u.strip() for u in urls.split(",")):
        if not url:
            continue
        parts = urlsplit(url)
        if parts.scheme not in _SECURE_SCHEMES:
            raise ValueError(f"URL scheme must be http, https, unix, or unixs: {url}")
        secure = _SECURE_SCHEMES[parts.scheme]
        if secure and tls.empty:
            raise ValueError(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url "
                f"{url} with HTTPS scheme"
            )
        if parts.scheme in ("unix", "unixs"):
            address = "unix:" + parts.netloc + parts.path
        else:
            if parts.port is None:
                raise ValueError(f'URL address does not have the form "host:port": {url}')
            address = parts.netloc
        listeners.append(Listener(url, address, secure))
    if not listeners:
        raise ValueError("no client URL to listen on")
    return listeners
