"""Handlers that want the caller get it from the native transport: the
"token" request header and the common name of the verified client
certificate (an in-process server with one extra method in its table)."""

import ssl

import pytest
from h2client import RawClient, frame

from k0s_store.api.methods import Method, Shape
from k0s_store.api.settings import Settings
from k0s_store.core import PURE
from k0s_store.transport.listeners import TLSFiles, parse_listen_urls

pytestmark = pytest.mark.skipif(PURE, reason="the native transport needs the compiled core")

ECHO = "/test.Echo/Caller"


@pytest.fixture
def echo_server(tmp_path, tls_files, monkeypatch):
    """The real table plus /test.Echo/Caller, answering "<token>|<cert CN>"."""
    from k0s_store.mvcc import Store
    from k0s_store.transport import native

    def echo(request: bytes, caller) -> bytes:
        return f"{caller.token}|{caller.cert_cn}".encode()

    real_table = native.method_table

    def table(services):
        methods = real_table(services)
        methods[ECHO] = Method("test.Echo", "Caller", Shape.UNARY, echo, wants_caller=True)
        return methods

    monkeypatch.setattr(native, "method_table", table)
    files = TLSFiles(str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca), True)
    listeners = parse_listen_urls("http://127.0.0.1:0,https://127.0.0.1:0", files)
    store = Store(tmp_path / "data", fsync=False)
    bound = native.start_server(store, Settings(), listeners, files)
    yield [address for _, address in bound.addresses]
    assert bound.server.stop(1.0).wait(10)
    store.close()


def test_token_and_certificate_name_reach_the_handler(echo_server, tls_files):
    plain, secure = echo_server
    client = RawClient(plain)
    response = client.call(ECHO, frame(b""), [("token", "secret-token")])
    assert response.status == 0 and response.messages() == [b"secret-token|None"]
    client.close()
    context = ssl.create_default_context(cafile=str(tls_files.ca))
    context.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
    context.set_alpn_protocols(["h2"])
    client = RawClient(secure, tls=context)
    response = client.call(ECHO, frame(b""))
    assert response.status == 0 and response.messages() == [b"None|client"]
    client.close()
