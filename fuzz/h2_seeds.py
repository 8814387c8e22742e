#!/usr/bin/env python3
"""Writes the HTTP/2 seeds of the probe_connection fuzz target into
fuzz/seeds/probe_connection/h2-*: connections that open with the h2
preface, as the kubelet's gRPC probes and gRPC clients do, carrying
SETTINGS and gRPC health calls (Check, Watch, List) or an HTTP probe over
HTTP/2. Run it again after changing it; the seeds it writes are committed.

Each seed starts with the target's two bytes (see fuzz/src/lib.rs,
Sending::from_bytes): the lifecycle state (0 running, 1 reasons shown,
2 starting, 3 draining, 4 broken; +0x80 from outside loopback), then how
the bytes are sent (bits 0-1 piece size, 2-3 pause, 0x10 no FIN, 0x20 the
client does not read).
"""

import os
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 8, 9
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def string(value):
    # HPACK string literal, not Huffman-coded; every value here is short.
    assert len(value) < 127
    return bytes([len(value)]) + value


def literal(name, value):
    # Literal header field without indexing, new name (RFC 7541, 6.2.2).
    return b"\x00" + string(name) + string(value)


def grpc_headers(method):
    return (
        b"\x83"  # :method POST
        + b"\x86"  # :scheme http
        + b"\x04" + string(b"/grpc.health.v1.Health/" + method)  # :path
        + b"\x01" + string(b"probe")  # :authority
        + literal(b"content-type", b"application/grpc")
        + literal(b"te", b"trailers")
        + literal(b"user-agent", b"kube-probe/1.33")
    )


def message(service=None):
    # A HealthCheckRequest (or an empty HealthListRequest), gRPC-framed.
    body = b"" if service is None else b"\x0a" + string(service)
    return b"\x00" + struct.pack(">I", len(body)) + body


def call(stream, method, service=None):
    return frame(HEADERS, END_HEADERS, stream, grpc_headers(method)) + frame(
        DATA, END_STREAM, stream, message(service)
    )


def http_get(stream, path):
    block = b"\x82" + b"\x86" + b"\x04" + string(path) + b"\x01" + string(b"probe")
    return frame(HEADERS, END_HEADERS | END_STREAM, stream, block)


OPEN = PREFACE + frame(SETTINGS, 0, 0)

SEEDS = {
    # The kubelet's gRPC liveness probe.
    "h2-check-livez": (0, 0x00, OPEN + call(1, b"Check", b"livez")),
    # The server's overall health while draining.
    "h2-check-empty-draining": (3, 0x00, OPEN + call(1, b"Check", b"")),
    "h2-check-startupz-starting": (2, 0x00, OPEN + call(1, b"Check", b"startupz")),
    # One check, reasons shown; an unknown name (NOT_FOUND).
    "h2-check-per-check": (1, 0x00, OPEN + call(1, b"Check", b"readyz/database")),
    "h2-check-unknown": (0x80, 0x00, OPEN + call(1, b"Check", b"no-such-service")),
    # Several calls on one connection, sent 7 bytes at a time with pauses.
    "h2-checks-slow": (
        0,
        0x02 | 0x04,
        OPEN + call(1, b"Check", b"livez") + call(3, b"Check", b"readyz") + call(5, b"Check", b""),
    ),
    # Watch, with and without the client's FIN (the stream stays open
    # until the keep-alive ping goes unanswered).
    "h2-watch-readyz": (0, 0x00, OPEN + call(1, b"Watch", b"readyz")),
    "h2-watch-no-fin": (4, 0x10, OPEN + call(1, b"Watch", b"livez") + call(3, b"Watch", b"unknown")),
    "h2-list": (4, 0x00, OPEN + call(1, b"List")),
    # An HTTP probe over HTTP/2.
    "h2-http-get-verbose": (0, 0x00, OPEN + http_get(1, b"/readyz?verbose")),
    # A client that reads nothing.
    "h2-never-reads": (
        0,
        0x20,
        OPEN + b"".join(call(2 * i + 1, b"Check", b"readyz") for i in range(16)),
    ),
    # A header block over HEADERS and CONTINUATION; a call cancelled at
    # once; SETTINGS with a zero window, a PING and a WINDOW_UPDATE first.
    "h2-continuation": (
        0,
        0x00,
        OPEN
        + frame(HEADERS, 0, 1, grpc_headers(b"Check")[:20])
        + frame(CONTINUATION, END_HEADERS, 1, grpc_headers(b"Check")[20:])
        + frame(DATA, END_STREAM, 1, message(b"livez")),
    ),
    "h2-rapid-reset": (
        0,
        0x00,
        OPEN + b"".join(call(2 * i + 1, b"Check", b"livez") + frame(RST_STREAM, 0, 2 * i + 1, struct.pack(">I", 8)) for i in range(8)),
    ),
    "h2-settings-ping-window": (
        0,
        0x00,
        PREFACE
        + frame(SETTINGS, 0, 0, struct.pack(">HI", 0x4, 0) + struct.pack(">HI", 0x3, 8))
        + frame(PING, 0, 0, b"12345678")
        + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20))
        + call(1, b"Check", b"readyz")
        + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 100)),
    ),
}


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "probe_connection")
    for name, (state, how, connection) in SEEDS.items():
        with open(os.path.join(here, name), "wb") as seed:
            seed.write(bytes([state, how]) + connection)
    print(f"wrote {len(SEEDS)} seeds to {here}")


if __name__ == "__main__":
    main()
