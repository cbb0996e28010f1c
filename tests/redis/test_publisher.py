"""BufferedPublisher with a transport other than Redis: a real TCP line server on 127.0.0.1 stands in for
MQTT. The subclass below is all a new network sink needs (connect / send / disconnect); every fault is a
real one (nothing listening, a server that stops answering, a server that refuses an entry)."""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from pipelines.sinks.publisher import BufferedPublisher
from tests.conftest import free_port

Entry = tuple[str, str]          # (topic, payload)


class LinePublisher(BufferedPublisher[Entry]):
    """Sends ``topic payload\\n``; the server answers one line per entry, ``ok`` or a refusal."""

    def __init__(self, port: int, buffer_max_entries: int = 1000, timeout: float = 1.0) -> None:
        super().__init__(f"line server at 127.0.0.1:{port}", buffer_max_entries,
                         log=logging.getLogger("trackstream.test"), thread_name="line-publisher")
        self._port, self._timeout = port, timeout
        self._sock: socket.socket | None = None
        self._start()

    def put(self, topic: str, payload: str) -> None:
        self.enqueue((topic, payload))

    def _connect(self) -> None:
        if self._sock is None:
            self._sock = socket.create_connection(("127.0.0.1", self._port), timeout=self._timeout)

    def _send(self, batch: list[Entry]) -> Sequence[Entry]:
        assert self._sock is not None
        self._sock.sendall(b"".join(f"{topic} {payload}\n".encode() for topic, payload in batch))
        reader = self._sock.makefile("rb")
        replies = [reader.readline().strip() for _ in batch]
        if not all(replies):
            raise ConnectionError("server closed the connection")
        return [entry for entry, reply in zip(batch, replies) if reply != b"ok"]

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _destination(self, entry: Entry) -> str:
        return entry[0]


class LineServer:
    """Answers ``ok`` per line (``err`` for topic ``bad``); ``stall=True``: reads nothing, answers nothing."""

    def __init__(self, port: int, stall: bool = False, hang_up: bool = False) -> None:
        self.port, self.stall, self.hang_up = port, stall, hang_up
        self.received: list[str] = []
        self.connections = 0
        self.release = threading.Event()
        self._server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> None:
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                if outer.hang_up:      # accepts the connection, then closes it on the first entry unanswered
                    self.rfile.readline()
                    return
                if outer.stall:
                    outer.release.wait(10)
                    return
                for raw in self.rfile:
                    line = raw.decode().rstrip("\n")
                    outer.received.append(line)
                    self.wfile.write(b"err\n" if line.startswith("bad ") else b"ok\n")

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _lost_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "could not be delivered" in r.getMessage()]


@pytest.fixture
def line_server() -> Iterator[LineServer]:
    server = LineServer(free_port())
    yield server
    server.stop()


def test_entries_put_while_the_server_is_down_arrive_in_order_when_it_comes(line_server: LineServer) -> None:
    pub = LinePublisher(line_server.port)
    for i in range(10):
        pub.put("cam", str(i))
    time.sleep(0.3)                      # a few refused connection attempts, with backoff
    line_server.start()
    stats = pub.close(5)
    assert line_server.received == [f"cam {i}" for i in range(10)]
    assert (stats.published, stats.dropped, stats.outages) == (10, 0, 1)


def test_a_full_buffer_keeps_the_newest(line_server: LineServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="trackstream.test")
    pub = LinePublisher(line_server.port, buffer_max_entries=5)
    for i in range(12):
        pub.put("cam", str(i))
    assert pub.stats().buffered == 5 and pub.stats().dropped == 7
    line_server.start()
    stats = pub.close(5)
    assert line_server.received == [f"cam {i}" for i in range(7, 12)]
    assert (stats.published, stats.dropped) == (5, 7)
    expected = (f"line server at 127.0.0.1:{line_server.port}: 7 entries could not be delivered "
                "(5 published; 7 for cam; 7 dropped as the buffer filled)")
    assert _lost_lines(caplog) == [expected]


def test_refused_entries_are_counted_and_the_rest_delivered(
        line_server: LineServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="trackstream.test")
    line_server.start()
    pub = LinePublisher(line_server.port)
    for topic in ("cam", "bad", "cam", "bad", "cam"):
        pub.put(topic, "x")
    stats = pub.close(5)
    assert line_server.received == ["cam x", "bad x", "cam x", "bad x", "cam x"]
    assert (stats.published, stats.dropped) == (3, 2)
    expected = (f"line server at 127.0.0.1:{line_server.port}: 2 entries could not be delivered "
                "(3 published; 2 for bad; 2 refused by the server)")
    assert _lost_lines(caplog) == [expected]


def test_close_returns_on_time_when_the_server_stops_answering(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="trackstream.test")
    server = LineServer(free_port(), stall=True)
    server.start()
    try:
        pub = LinePublisher(server.port, timeout=10.0)   # a send waits far longer than close() may
        for i in range(20):
            pub.put("cam", str(i))
        time.sleep(0.2)                                  # the thread is now stuck waiting for replies
        t0 = time.monotonic()
        stats = pub.close(0.5)
        took = time.monotonic() - t0
    finally:
        server.stop()
    assert took < 0.5 + pub.close_grace + 0.3
    assert (stats.published, stats.dropped, stats.buffered) == (0, 20, 0)
    expected = (f"line server at 127.0.0.1:{server.port}: 20 entries could not be delivered "
                "(0 published; 20 for cam; 20 unsent after the 0.5 s flush timeout)")
    assert [r.getMessage() for r in caplog.records] == [expected]   # that one line, and nothing after it


def test_a_server_that_accepts_connections_but_fails_every_send_is_one_outage(
        caplog: pytest.LogCaptureFixture) -> None:
    """Like a SQLite file on a full disk: connecting works, every write fails. The thread used to reconnect at
    once after each failed send, without backing off, logging "unreachable" and "reachable again" each time
    (thousands of lines a second)."""
    server = LineServer(free_port(), hang_up=True)
    server.start()
    try:
        caplog.set_level(logging.WARNING, logger="trackstream.test")
        pub = LinePublisher(server.port)
        for i in range(5):
            pub.put("cam", str(i))
        time.sleep(1.5)
        stats = pub.close(0.2)
    finally:
        server.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable (" in m for m in messages) == 1, messages
    assert not any("reachable again" in m for m in messages), messages
    assert server.connections <= 10                  # backed off: 0.05, 0.1, 0.2, 0.4, 0.8 s
    assert (stats.published, stats.dropped, stats.outages) == (0, 5, 1)
