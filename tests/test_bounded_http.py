"""Slow-loris and connection floods against the feedback endpoint and the exporter, over real
sockets: a whole-request deadline (driven by a fake monotonic clock, so nothing waits for it)
and a cap on concurrent connections."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerts.feedback_server import FeedbackApp, FeedbackServer
from dashboards.exporter import Exporter
from monitor.bounded_http import (
    BUSY_RESPONSE,
    BoundedHTTPServer,
    DeadlineHandler,
    _DeadlineWriter,
)
from monitor.clock import FakeClock
from monitor.store import Store
from tests.test_feedback_server import NOW, SECRET

WAIT = 0.9  # the longest any socket call here may wait: the deadlines come from the fake clock


class FakeMonotonic:
    """A monotonic clock the test moves; ``asked`` is set once the server has read it
    ``calls`` times (the connection's deadline is set and its first read is under way)."""

    def __init__(self, calls: int = 2) -> None:
        self.now = 1000.0
        self._count = 0
        self._calls = calls
        self.asked = threading.Event()

    def __call__(self) -> float:
        self._count += 1
        if self._count >= self._calls:
            self.asked.set()
        return self.now


@pytest.fixture
def lite(sqlite_url: str) -> Iterator[Store]:
    """One backend is enough: the store plays no part in the HTTP limits."""
    s = Store.open(sqlite_url)
    try:
        yield s
    finally:
        s.close()


Serve = Callable[..., AbstractContextManager[tuple[int, Callable[[], float]]]]


@pytest.fixture(params=["feedback", "exporter"])
def serve(request: pytest.FixtureRequest, lite: Store) -> Serve:
    """Starts one of the two servers; yields its port and its busy-connection counter."""

    @contextmanager
    def start(**kw: Any) -> Iterator[tuple[int, Callable[[], float]]]:
        if request.param == "feedback":
            app = FeedbackApp(lite, SECRET, clock=FakeClock(NOW), responder=None)
            with FeedbackServer(app, **kw) as srv:
                yield srv._httpd.server_address[1], app.busy._value.get
        else:
            ex = Exporter(registry=CollectorRegistry())
            try:
                yield ex.start("127.0.0.1", 0, **kw), ex.connections_busy._value.get
            finally:
                ex.stop()

    return start


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def _status(port: int) -> bytes:
    with _connect(port) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        return sock.recv(64).split(b"\r\n", 1)[0]


def test_a_client_sending_a_byte_per_read_timeout_is_dropped_at_the_deadline(
        serve: Serve) -> None:
    """Each byte arrives well within a read timeout, but the request as a whole is late."""
    clock = FakeMonotonic()
    with serve(monotonic=clock, request_deadline=10.0) as (port, _), _connect(port) as loris:
        loris.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert clock.asked.wait(WAIT)
        clock.now += 10.5  # 10.5 s later the header line is still not finished ...
        loris.sendall(b"a")  # ... and one more byte keeps a per-read timeout happy
        assert loris.recv(1024) == b""  # closed, no answer, long before a 10 s read timeout


def test_a_body_trickling_in_past_the_deadline_is_dropped(lite: Store) -> None:
    clock = FakeMonotonic()
    app = FeedbackApp(lite, SECRET, clock=FakeClock(NOW), responder=None)
    with FeedbackServer(app, monotonic=clock) as srv, _connect(srv._httpd.server_address[1]) \
            as loris:
        loris.sendall(b"POST /slack/actions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
                      + b"payload=xx")
        assert clock.asked.wait(WAIT)
        clock.now += 11
        loris.sendall(b"x")
        assert loris.recv(1024) == b""


def test_a_request_within_the_deadline_is_answered(serve: Serve) -> None:
    clock = FakeMonotonic()
    with serve(monotonic=clock) as (port, _), _connect(port) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        assert clock.asked.wait(WAIT)
        clock.now += 9  # under the 10 s deadline
        sock.sendall(b"\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.0 200")


def test_connections_over_the_cap_get_a_503_at_once_and_a_freed_slot_serves_again(
        serve: Serve) -> None:
    with serve(max_connections=2) as (port, busy):
        idle = [_connect(port) for _ in range(2)]  # connected, sending nothing: slow clients
        try:
            with _connect(port) as third:
                assert third.recv(1024) == BUSY_RESPONSE  # at once: no thread waited on it
            assert busy() == 1
            idle.pop(0).close()  # its thread sees the end of the stream and frees its slot
            give_up = time.monotonic() + WAIT
            while (status := _status(port)).startswith(b"HTTP/1.0 503"):
                assert time.monotonic() < give_up, "the freed slot was never reused"
            assert status == b"HTTP/1.0 200 OK"
        finally:
            for sock in idle:
                sock.close()


def test_the_server_refuses_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        BoundedHTTPServer(("127.0.0.1", 0), DeadlineHandler, max_connections=0)


def test_the_answer_must_be_taken_within_the_deadline_of_its_first_byte() -> None:
    """A client that stops reading cannot hold the thread: writes stop at the deadline."""
    clock = FakeMonotonic()
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        out = _DeadlineWriter(server_side, 10.0, clock)
        assert out.write(b"HTTP/1.0 200 OK\r\n") == 17  # the deadline starts here
        clock.now += 9
        out.write(b"Content-Length: 0\r\n\r\n")
        clock.now += 2
        with pytest.raises(TimeoutError):
            out.write(b"late")
        assert client_side.recv(1024) == b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
