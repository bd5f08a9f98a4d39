"""A loopback TCP forwarder that connects out from a chosen source address and records each HTTP exchange.

skopeo cannot bind a source address, so each skopeo client talks to its own forwarder on 127.0.0.1, and the
forwarder opens the connection to nginx from that client's address (127.0.0.2, 127.0.0.3, …). nginx then sees the
real TCP peer, so `$remote_addr` is the client's address without any header trickery.

While copying bytes both ways the forwarder reads the HTTP/1.1 framing (request and status lines, Content-Length,
chunked bodies, HEAD and bodiless statuses), so the lab records every request the client made and the status and
body bytes it got back: the client-side truth the logs are checked against. A connection that starts with bytes
that are not an HTTP request line (skopeo's TLS ClientHello probe of a plain-HTTP port) is recorded as one request
with method `-`, as nginx logs it.
"""

from __future__ import annotations

import datetime as dt
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

_METHOD_CHARS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_BODYLESS = {204, 304}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class _Message:
    start_line: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: int = 0


class HttpStream:
    """Incremental HTTP/1.1 message framing over one direction of a connection.

    `on_message(msg)` is called with each complete message; `body_mode(msg)` decides how its body is framed
    ('length', 'chunked', 'close' or 'none'); it is asked after the head is read.
    """

    def __init__(self, on_head: Callable[[_Message], str], on_message: Callable[[_Message], None],
                 is_request: bool) -> None:
        self.buf = bytearray()
        self.state = "head"
        self.remaining = 0
        self.msg = _Message()
        self.on_head, self.on_message, self.is_request = on_head, on_message, is_request
        self.binary = False

    def feed(self, data: bytes) -> None:
        self.buf += data
        while self._step():
            pass

    def eof(self) -> None:
        if self.state in ("close", "binary") or (self.state == "head" and self.buf and self.binary):
            self._done()

    def _done(self) -> None:
        msg, self.msg = self.msg, _Message()
        self.state = "head"
        self.on_message(msg)

    def _step(self) -> bool:
        if self.state == "binary":
            self.msg.body += len(self.buf)
            self.buf.clear()
            return False
        if self.state == "head":
            if not self.buf:
                return False
            if self.is_request and self.buf[0] not in _METHOD_CHARS:
                self.binary = True
                self.msg = _Message(start_line="-")
                self.state = "binary"
                self.on_head(self.msg)
                return True
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[: end + 4]
            self.msg = _Message(start_line=head[0])
            for h in head[1:]:
                k, _, v = h.partition(":")
                self.msg.headers[k.strip().lower()] = v.strip()
            mode = self.on_head(self.msg)
            if mode == "none":
                self._done()
            elif mode == "chunked":
                self.state = "chunk_size"
            elif mode == "close":
                self.state = "close"
            else:
                self.remaining = int(self.msg.headers.get("content-length", "0") or 0)
                self.state = "length"
                if self.remaining == 0:
                    self._done()
            return True
        if self.state == "length":
            k = min(self.remaining, len(self.buf))
            if k == 0:
                return False
            del self.buf[:k]
            self.remaining -= k
            self.msg.body += k
            if self.remaining == 0:
                self._done()
            return True
        if self.state == "chunk_size":
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(self.buf[:end]).split(b";")[0].strip() or b"0", 16)
            del self.buf[: end + 2]
            if size == 0:
                self.state = "trailer"
            else:
                self.state, self.remaining = "chunk_data", size
            return True
        if self.state == "chunk_data":
            k = min(self.remaining, len(self.buf))
            if k == 0:
                return False
            del self.buf[:k]
            self.remaining -= k
            self.msg.body += k
            if self.remaining == 0:
                self.state = "chunk_crlf"
            return True
        if self.state == "chunk_crlf":
            if len(self.buf) < 2:
                return False
            del self.buf[:2]
            self.state = "chunk_size"
            return True
        if self.state == "trailer":
            end = self.buf.find(b"\r\n")
            if end < 0:
                return False
            line = bytes(self.buf[:end])
            del self.buf[: end + 2]
            if not line:
                self._done()
            return True
        if self.state == "close":
            self.msg.body += len(self.buf)
            self.buf.clear()
            return False
        raise AssertionError(self.state)


class _Exchange:
    """Pairs the requests and responses of one connection and records each finished request."""

    def __init__(self, record: Callable[[dict], None]) -> None:
        self.record = record
        self.pending: deque[tuple[_Message, str]] = deque()
        self.done_requests: deque[tuple[_Message, str]] = deque()
        self.req = HttpStream(self._req_head, self._req_done, is_request=True)
        self.resp = HttpStream(self._resp_head, self._resp_done, is_request=False)
        self.current: _Message | None = None

    def _req_head(self, msg: _Message) -> str:
        self.pending.append((msg, _now()))
        if msg.start_line == "-":
            return "binary"
        te = msg.headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            return "chunked"
        return "length" if "content-length" in msg.headers else "none"

    def _req_done(self, msg: _Message) -> None:
        pass

    def _resp_head(self, msg: _Message) -> str:
        status = _status(msg.start_line)
        if 100 <= status < 200:
            return "none"
        req = self.pending[0][0] if self.pending else None
        if (req is not None and req.start_line.startswith("HEAD ")) or status in _BODYLESS:
            return "none"
        te = msg.headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            return "chunked"
        return "length" if "content-length" in msg.headers else "close"

    def _resp_done(self, msg: _Message) -> None:
        status = _status(msg.start_line)
        if 100 <= status < 200 or not self.pending:
            return
        req, started = self.pending.popleft()
        self.record(_row(req, started, status, msg.body, msg.headers))

    def close(self) -> None:
        self.resp.eof()
        while self.pending:  # asked but never answered
            req, started = self.pending.popleft()
            self.record(_row(req, started, 0, 0, {}))


def _status(start_line: str) -> int:
    parts = start_line.split(" ")
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return 0


def _row(req: _Message, started: str, status: int, body_out: int, resp_headers: dict) -> dict:
    if req.start_line == "-":
        method, target = "-", None
    else:
        method, _, rest = req.start_line.partition(" ")
        target = rest.rsplit(" ", 1)[0]
    return {
        "start": started, "time": _now(), "method": method, "path": target, "status": status,
        "bytes_out": body_out, "bytes_in": req.body, "user_agent": req.headers.get("user-agent"),
    }


class Tap:
    """Forward 127.0.0.1:<port> to `upstream`, connecting from `source`; record exchanges via `record(row)`.

    Runs in one thread with a selector; bounded: it stops when `stop()` is called or after `max_s` seconds.
    """

    def __init__(self, source: str, upstream: tuple[str, int], record: Callable[[dict], None],
                 max_s: float = 170.0) -> None:
        self.source, self.upstream, self.record_fn = source, upstream, record
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.max_s = max_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"tap-{source}", daemon=True)
        self.connections = 0

    def start(self) -> Tap:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _record(self, row: dict) -> None:
        with self._lock:
            self.record_fn(row)

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, ("accept", None))
        deadline = time.monotonic() + self.max_s
        peers: dict[socket.socket, tuple[socket.socket, _Exchange, bool]] = {}
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.2):
                    kind, _ = key.data
                    if kind == "accept":
                        try:
                            client, _ = self.listener.accept()
                        except BlockingIOError:
                            continue
                        self.connections += 1
                        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                        up.bind((self.source, 0))
                        up.settimeout(5)
                        try:
                            up.connect(self.upstream)
                        except OSError:
                            up.close()
                            client.close()
                            continue
                        client.setblocking(False)
                        up.setblocking(False)
                        ex = _Exchange(self._record)
                        peers[client] = (up, ex, True)
                        peers[up] = (client, ex, False)
                        sel.register(client, selectors.EVENT_READ, ("data", None))
                        sel.register(up, selectors.EVENT_READ, ("data", None))
                        continue
                    sock = key.fileobj
                    if sock not in peers:
                        continue
                    other, ex, from_client = peers[sock]
                    try:
                        data = sock.recv(1 << 16)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if data:
                        (ex.req if from_client else ex.resp).feed(data)
                        try:
                            other.setblocking(True)
                            other.settimeout(10)
                            other.sendall(data)
                            other.setblocking(False)
                        except OSError:
                            data = b""
                    if not data:
                        for s in (sock, other):
                            if s in peers:
                                sel.unregister(s)
                                peers.pop(s)
                                s.close()
                        ex.close()
        finally:
            for s in list(peers):
                sel.unregister(s)
                s.close()
            sel.close()
            self.listener.close()
