"""The recording forwarder's HTTP framing: the lab's truth is only as good as this."""

from __future__ import annotations

import socket
import threading

from tests.lab.tap import Tap, _Exchange


def _feed_in_pieces(stream, data: bytes, size: int = 7) -> None:
    for i in range(0, len(data), size):
        stream.feed(data[i:i + size])


def test_exchange_pairs_requests_and_responses_across_framings():
    rows: list[dict] = []
    ex = _Exchange(rows.append)
    requests = (
        b"HEAD /v2/a/manifests/v1 HTTP/1.1\r\nHost: x\r\nUser-Agent: skopeo/1.9.3\r\n\r\n"
        b"PATCH /v2/a/blobs/uploads/u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n"
        b"PUT /v2/a/blobs/uploads/u?digest=d HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwxyz"
        b"GET /v2/a/blobs/b HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    responses = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 583\r\n\r\n"  # HEAD: no body despite the length
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n"
    )
    _feed_in_pieces(ex.req, requests)
    _feed_in_pieces(ex.resp, responses)
    ex.close()
    got = [(r["method"], r["path"], r["status"], r["bytes_in"], r["bytes_out"]) for r in rows]
    assert got == [
        ("HEAD", "/v2/a/manifests/v1", 200, 0, 0),
        ("PATCH", "/v2/a/blobs/uploads/u", 202, 8, 0),
        ("PUT", "/v2/a/blobs/uploads/u?digest=d", 201, 4, 0),
        ("GET", "/v2/a/blobs/b", 200, 0, 10),
    ]
    assert rows[0]["user_agent"] == "skopeo/1.9.3"


def test_tls_probe_and_unanswered_request_are_recorded():
    rows: list[dict] = []
    ex = _Exchange(rows.append)
    ex.req.feed(b"\x16\x03\x01\x00\xde\x01\x00\x00")
    ex.resp.feed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 157\r\n\r\n" + b"x" * 157)
    ex.close()
    ex2 = _Exchange(rows.append)
    ex2.req.feed(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    ex2.close()  # the server went away without an answer
    assert [(r["method"], r["status"], r["bytes_out"]) for r in rows] == [("-", 400, 157), ("GET", 0, 0)]


def test_tap_connects_from_its_source_address():
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve():
        conn, addr = server.accept()
        seen.append(addr[0])
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(1024)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    rows: list[dict] = []
    tap = Tap("127.0.0.9", server.getsockname(), rows.append, max_s=10).start()
    try:
        with socket.create_connection(("127.0.0.1", tap.port), timeout=5) as c:
            c.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while not got.endswith(b"{}"):
                got += c.recv(1024)
        th.join(5)
    finally:
        tap.stop()
        server.close()
    assert seen == ["127.0.0.9"]
    assert [(r["method"], r["path"], r["status"], r["bytes_out"]) for r in rows] == [("GET", "/v2/", 200, 2)]
