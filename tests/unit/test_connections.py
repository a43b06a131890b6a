"""The connection edge (common.serving.connections) on a real uvicorn server and raw sockets.

A small application behind the Guard, served by uvicorn with :class:`EdgeProtocol`
(the servers' protocol), in a thread on 127.0.0.1, with short timeouts: what a hostile
or careless client sends, byte by byte, and what it gets back.
"""

from __future__ import annotations

import contextlib
import functools
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pytest
import uvicorn
from prometheus_client import REGISTRY
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from common.core.settings import Limits
from common.serving.connections import EdgeProtocol, refusal_of
from common.serving.edge import Guard
from harness.servers import free_port

LIMITS = Limits(
    max_body_bytes=4096,
    max_header_bytes=2048,
    max_header_count=20,
    header_timeout_seconds=0.5,
    body_timeout_seconds=0.5,
    max_connections=30,
)
POST = b"POST /echo HTTP/1.1\r\nhost: t\r\n"


@dataclass
class Served:
    """A server running the echo application; ``calls`` counts the requests it saw and
    ``refusals`` says, for each, whether its scope carried the connection's Refusal."""

    port: int
    calls: list[str] = field(default_factory=list)
    refusals: list[bool] = field(default_factory=list)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def request(self, raw: bytes) -> bytes:
        """Send ``raw`` on a new connection; the answer read."""
        with contextlib.closing(self.connect()) as sock:
            sock.sendall(raw)
            return read_answer(sock)


def read_answer(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """One answer: its head and as much body as its content-length says, or what comes
    before the server closes the connection (b"" if it closes without a word)."""
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            if length and len(body) >= int(length[1]):
                break
    return received


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the server closes ``sock`` within ``timeout`` after what it has sent."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def send_until_answered(sock: socket.socket, piece: bytes, most: int) -> int:
    """Send ``piece`` after ``piece`` (``most`` bytes at most), pausing 10 ms after each,
    until the server answers; the bytes sent by then."""
    sent = 0
    with contextlib.suppress(OSError):  # the server may close before we stop
        while sent < most and not select.select([sock], [], [], 0.01)[0]:
            sock.sendall(piece)
            sent += len(piece)
    return sent


def status_and_error(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, orjson.loads(body)["error"] if body else ""


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("connections_refused_total", {"reason": reason}) or 0.0


@contextlib.contextmanager
def serving(limits: Limits = LIMITS) -> Iterator[Served]:
    served = Served(free_port())

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        served.calls.append(scope["path"])
        served.refusals.append(refusal_of(scope) is not None)
        body = await Request(scope, receive).body()
        await Response(b"echo %d" % len(body))(scope, receive, send)

    config = uvicorn.Config(
        Guard(echo, limits=limits),
        host="127.0.0.1",
        port=served.port,
        http=functools.partial(EdgeProtocol, limits=limits),  # type: ignore[arg-type]
        loop="uvloop",
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with serving() as served:
        yield served


def test_requests_within_every_limit_are_served_on_one_connection(server: Served) -> None:
    chunked = b"transfer-encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n"
    with contextlib.closing(server.connect()) as sock:
        for _ in range(3):  # keep-alive: each head and body has its own time and size
            sock.sendall(POST + b"content-length: 5\r\n\r\nhel")
            time.sleep(0.3)  # a pause shorter than the body timeout
            sock.sendall(b"lo")
            assert sock.recv(65536).endswith(b"echo 5")
            time.sleep(0.7)  # longer than either timeout, between requests
        sock.sendall(POST + chunked)
        assert sock.recv(65536).endswith(b"echo 5")
        sock.sendall(POST + b"".join(b"h%d: v\r\n" % i for i in range(18)) + b"\r\n")
        assert sock.recv(65536).endswith(b"echo 0")


def test_only_a_request_whose_body_is_still_coming_carries_a_refusal(server: Served) -> None:
    """The usual request, its head and body in one read, costs the edge no Refusal (nor a
    timer or a receive wrapper); one whose body is still coming when the application
    starts carries one, and is served when the rest comes in time."""
    seen = len(server.refusals)
    with contextlib.closing(server.connect()) as sock:
        sock.sendall(POST + b"content-length: 5\r\n\r\nhello")
        assert sock.recv(65536).endswith(b"echo 5")
        sock.sendall(POST + b"content-length: 5\r\n\r\nhel")
        time.sleep(0.2)  # the application starts and waits for the rest of its body
        sock.sendall(b"lo")
        assert sock.recv(65536).endswith(b"echo 5")
        sock.sendall(POST + b"content-length: 5\r\n\r\nhello")
        assert sock.recv(65536).endswith(b"echo 5")
    assert server.refusals[seen:] == [False, True, False]


def test_more_headers_than_the_limit_are_a_431_the_application_never_sees(
    server: Served,
) -> None:
    before, calls = refused("header_count"), len(server.calls)
    many = POST + b"".join(b"h%d: v\r\n" % i for i in range(2000)) + b"\r\n"
    status, error = status_and_error(server.request(many))
    assert (status, error) == (431, "the request has more than 20 headers (max_header_count)")
    assert len(server.calls) == calls
    assert refused("header_count") == before + 1


def test_a_long_header_is_a_431_as_soon_as_its_bytes_pass_the_limit(server: Served) -> None:
    """Not once it is whole: a single 64 MiB header was buffered whole, and joined piece
    by piece at a cost quadratic in its length."""
    before = refused("header_bytes")
    with contextlib.closing(server.connect()) as sock:
        sock.sendall(POST + b"x-long: ")
        sent = send_until_answered(sock, b"a" * 16384, 4 * 1024 * 1024)
        answer = read_answer(sock)
    assert sent < 1024 * 1024, f"{sent} bytes of one header were sent before an answer"
    assert status_and_error(answer) == (
        431,
        "the request's head is larger than 2048 bytes (max_header_bytes)",
    )
    assert refused("header_bytes") == before + 1


def test_a_long_url_counts_toward_the_head(server: Served) -> None:
    answer = server.request(b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nhost: t\r\n\r\n")
    assert status_and_error(answer)[0] == 431


def test_a_silent_connection_is_closed_and_half_a_head_is_a_408(server: Served) -> None:
    before = refused("header_timeout")
    silent, half = server.connect(), server.connect()
    with contextlib.closing(silent), contextlib.closing(half):
        half.sendall(POST + b"content-le")
        started = time.monotonic()
        assert read_answer(silent) == b""  # closed, unanswered: it asked nothing
        assert status_and_error(read_answer(half)) == (
            408,
            "the request's head did not arrive within 0.5 s (header_timeout_seconds)",
        )
        assert closed_by_server(half)
        assert time.monotonic() - started < 4
    assert refused("header_timeout") == before + 2


@pytest.mark.parametrize(
    "partial",
    [b"content-length: 100\r\n\r\nabc", b"transfer-encoding: chunked\r\n\r\n10\r\nabc"],
    ids=["half-a-body", "half-a-chunk"],
)
def test_half_a_body_is_a_408_after_the_body_timeout(server: Served, partial: bytes) -> None:
    before = refused("body_timeout")
    started = time.monotonic()
    with contextlib.closing(server.connect()) as sock:
        sock.sendall(POST + partial)
        assert status_and_error(read_answer(sock)) == (
            408,
            "the request's body did not arrive within 0.5 s of its head (body_timeout_seconds)",
        )
        assert closed_by_server(sock)
    assert time.monotonic() - started < 4
    assert refused("body_timeout") == before + 1


def test_a_body_dripped_a_byte_at_a_time_is_a_408_at_its_deadline(server: Served) -> None:
    """The body timeout bounds the whole body, not the pause between two reads."""
    with contextlib.closing(server.connect()) as sock:
        sock.sendall(POST + b"content-length: 100\r\n\r\n")
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the server closes while we drip
            while time.monotonic() - started < 3 and not select.select([sock], [], [], 0.1)[0]:
                sock.sendall(b"a")
        assert status_and_error(read_answer(sock))[0] == 408


def test_chunk_extensions_count_toward_the_body_limit(server: Served) -> None:
    """Chunks of one byte, each with an extension of 16,000 bytes: they were read for as
    long as they came, and the body's 413 counted only its bytes."""
    before = refused("body_bytes")
    with contextlib.closing(server.connect()) as sock:
        sock.sendall(POST + b"transfer-encoding: chunked\r\n\r\n")
        piece = b"1;ext=" + b"e" * 16000 + b"\r\na\r\n"
        sent = send_until_answered(sock, piece, 4 * 1024 * 1024)
        answer = read_answer(sock)
    assert sent < 1024 * 1024, f"{sent} bytes of chunk extensions were sent before an answer"
    status, error = status_and_error(answer)
    assert status == 413 and "larger than 4096 bytes (max_body_bytes)" in error, error
    assert refused("body_bytes") == before + 1


def test_connections_beyond_the_limit_are_a_503_and_closed_at_once() -> None:
    with serving() as served:
        before = refused("max_connections")
        held = [served.connect() for _ in range(LIMITS.max_connections)]
        time.sleep(0.1)  # accepted
        extra = [served.connect() for _ in range(5)]
        try:
            for sock in extra:
                status, error = status_and_error(read_answer(sock, timeout=2))
                assert status == 503 and "max_connections" in error, error
                assert closed_by_server(sock, timeout=2)
            assert refused("max_connections") == before + 5
            # The held ones time out (header_timeout_seconds); then there is room again.
            time.sleep(LIMITS.header_timeout_seconds + 0.5)
            assert served.request(POST + b"content-length: 0\r\n\r\n").endswith(b"echo 0")
        finally:
            for sock in held + extra:
                sock.close()


def test_the_connection_limit_fits_the_file_descriptor_limit() -> None:
    """In a process whose soft limit is 300 files: raised toward the hard limit when it
    can be (4,096), else the connection limit is lowered, with a warning."""
    script = """
import logging, resource
logging.basicConfig(level="WARNING", format="%(message)s")
from common.serving.connections import fit_to_file_limit
resource.setrlimit(resource.RLIMIT_NOFILE, (300, 4096))
print(fit_to_file_limit(1000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))
print(fit_to_file_limit(1000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["1000", "1256", "44", "300"]
    assert done.stderr.strip() == (
        "max_connections=1000 lowered to 44: the process may open 300 files (ulimit -n)"
    )
