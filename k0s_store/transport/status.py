"""gRPC status codes by name, and grpc-message's percent-encoding.

`k0s_store.errors.EtcdError.code` names a status the way grpc.StatusCode
does; the native transport sends its number.
"""

_CODES = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}

OK = _CODES["OK"]
CANCELLED = _CODES["CANCELLED"]
UNKNOWN = _CODES["UNKNOWN"]
UNIMPLEMENTED = _CODES["UNIMPLEMENTED"]


def status_code(name: str) -> int:
    """The number of the status `name` (a grpc.StatusCode member name)."""
    return _CODES[name]


def encode_message(text: str) -> bytes:
    """grpc-message's form of `text`: UTF-8, with bytes outside printable ASCII
    and '%' written as %XX (the gRPC HTTP/2 spec), so any text survives."""
    out = bytearray()
    for byte in text.encode():
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)
