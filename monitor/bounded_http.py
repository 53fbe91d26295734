"""A stdlib threaded HTTP server that a slow or greedy client cannot tie up.

Why: ``ThreadingHTTPServer`` starts a thread per connection and its handlers time out per
*read*: a client sending one byte per timeout (slow-loris) held a thread for ever, and enough
connections exhausted the process. The feedback endpoint (reachable from the internet) and the
exporter use :class:`BoundedHTTPServer` instead, which adds

* a whole-request deadline: the request line, headers and body must all arrive within
  ``request_deadline`` seconds of the connection being taken up (every ``recv`` waits at most
  for what is left), and the answer must be sent within as long again; a client too slow for
  either is disconnected;
* a cap on concurrent connections: beyond ``max_connections`` a new connection gets an
  immediate ``503`` and is closed by the accepting thread, without a thread of its own.

``monotonic`` is injectable, so tests drive the deadline with a fake clock instead of waiting.
prometheus-client's own ``start_http_server`` is the same stdlib design without these limits.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["BUSY_RESPONSE", "BoundedHTTPServer", "Deadline", "DeadlineHandler"]

#: Seconds to receive a whole request (line, headers, body), and again to send the answer.
DEFAULT_REQUEST_DEADLINE = 10.0
#: Connections served at once; more are answered 503 at once.
DEFAULT_MAX_CONNECTIONS = 32
#: What a connection over the cap gets, written without blocking before it is closed.
BUSY_RESPONSE = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                 b"Content-Length: 5\r\nRetry-After: 1\r\nConnection: close\r\n\r\nbusy\n")

Monotonic = Callable[[], float]


class Deadline:
    """A point in time on ``monotonic``; :meth:`remaining` raises once it has passed."""

    def __init__(self, seconds: float, monotonic: Monotonic = time.monotonic) -> None:
        self._monotonic = monotonic
        self._end = monotonic() + seconds

    def remaining(self) -> float:
        left = self._end - self._monotonic()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        return left


class _DeadlineReader(io.RawIOBase):
    """The socket's reading side: each ``recv`` waits at most until the deadline, so a
    buffered ``readline`` fed a byte at a time still ends there."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._deadline.remaining())
        return self._sock.recv_into(buffer)


class _DeadlineWriter(io.BufferedIOBase):
    """The socket's writing side: all of the answer within ``seconds`` of its first byte
    (``sendall``'s timeout bounds the whole call), so a client that stops reading is cut."""

    def __init__(self, sock: socket.socket, seconds: float, monotonic: Monotonic) -> None:
        self._sock = sock
        self._seconds = seconds
        self._monotonic = monotonic
        self._deadline: Deadline | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._deadline is None:
            self._deadline = Deadline(self._seconds, self._monotonic)
        self._sock.settimeout(self._deadline.remaining())
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


class DeadlineHandler(BaseHTTPRequestHandler):
    """Reads and writes through the server's deadline (a :class:`BoundedHTTPServer`)."""

    server: BoundedHTTPServer

    def setup(self) -> None:
        super().setup()
        server = self.server
        self.rfile.close()
        self.rfile = io.BufferedReader(_DeadlineReader(
            self.connection, Deadline(server.request_deadline, server.monotonic)))
        self.wfile = _DeadlineWriter(self.connection, server.request_deadline,
                                     server.monotonic)


class BoundedHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with a request deadline and a connection cap (see module)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[DeadlineHandler], *,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 request_deadline: float = DEFAULT_REQUEST_DEADLINE,
                 monotonic: Monotonic = time.monotonic,
                 on_busy: Callable[[], None] | None = None) -> None:
        if max_connections < 1 or request_deadline <= 0:
            raise ValueError("max_connections and request_deadline must be positive")
        self.max_connections = max_connections
        self.request_deadline = request_deadline
        self.monotonic = monotonic
        #: called (on the accepting thread) for each connection refused as over the cap
        self.on_busy = on_busy
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse_busy(self, request: socket.socket) -> None:
        """503 without blocking the accepting thread: a fresh socket's send buffer is empty,
        so the short answer fits; if it does not, the connection is just closed."""
        if self.on_busy is not None:
            self.on_busy()
        try:
            request.setblocking(False)
            request.send(BUSY_RESPONSE)
        except OSError:
            pass
        self.shutdown_request(request)
