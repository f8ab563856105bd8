"""K0S_STORE_TRANSPORT picks the server; the pure-Python mode always gets grpcio."""

import pytest

from k0s_store.transport import server


@pytest.mark.parametrize(
    ("value", "pure", "expected"),
    [
        ("", False, "native"),
        ("native", False, "native"),
        ("grpcio", False, "grpcio"),
        ("", True, "grpcio"),
        ("native", True, "grpcio"),
    ],
)
def test_transport_name(monkeypatch, value, pure, expected):
    monkeypatch.setenv("K0S_STORE_TRANSPORT", value)
    monkeypatch.setattr(server, "PURE", pure)
    assert server.transport_name() == expected


def test_unknown_transport_is_refused(monkeypatch):
    monkeypatch.setenv("K0S_STORE_TRANSPORT", "quic")
    with pytest.raises(ValueError, match="K0S_STORE_TRANSPORT must be one of native, grpcio"):
        server.transport_name()
