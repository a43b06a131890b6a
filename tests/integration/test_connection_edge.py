"""Issue 20's connection edge, on the real servers with raw sockets: heads of thousands
of headers, connections that send nothing or half a request, more connections than the
server takes, clients that hang up, chunk extensions, compressed bodies and invalid
request ids (what a 503 shows of the predictor is in test_failures.py). Counts are
bounded (hundreds, not the issue's 20,000) and the timeouts short (1 s), set by flags."""

from __future__ import annotations

import contextlib
import gzip
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from harness.servers import Server, free_port, start_server
from tests.integration.conftest import MODEL, READY
from tests.integration.test_edge import FEATURES_V1, metric
from tests.integration.test_hardening import columnar, features_body
from tests.unit.records import VALID

V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"
ONE_RECORD = orjson.dumps({"instances": [VALID]})


def head(path: str = V1, *extra: bytes, length: int | None = None) -> bytes:
    lines = [b"POST " + path.encode() + b" HTTP/1.1", b"host: 127.0.0.1", *extra]
    if length is not None:
        lines.append(b"content-length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One answer (head, and the body its content-length says), or what came before the
    server closed the connection."""
    sock.settimeout(timeout)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
            top, _, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", top)
            if length and len(body) >= int(length[1]):
                break
    return received


def status_and_error(answer: bytes) -> tuple[int, str]:
    top, _, body = answer.partition(b"\r\n\r\n")
    return int(top.split(b" ", 2)[1]), orjson.loads(body)["error"]


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def served(server: Server) -> bool:
    """Whether a legitimate request is answered 200."""
    body = FEATURES_V1 if server.name.startswith("predictor") else {"instances": [VALID]}
    try:
        response = httpx.post(f"{server.url}{V1}", json=body, timeout=10)
    except httpx.TransportError:
        return False
    return response.status_code == 200


def answer_to(server: Server, raw: bytes) -> tuple[int, str]:
    """The status and error of the answer to ``raw``, sent on a new connection."""
    with contextlib.closing(connect(server)) as sock:
        sock.sendall(raw)
        return status_and_error(read_answer(sock))


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def impatient(predictor: Server, log_dir: Path) -> Iterator[Server]:
    """A transformer with 1 s timeouts, room for 150 connections and 4 KiB bodies."""
    port = free_port()
    server = start_server(
        "transformer-impatient",
        [
            "python",
            "-m",
            "transformer",
            "--predictor_host",
            f"127.0.0.1:{predictor.port}",
            "--http_port",
            str(port),
            "--header_timeout_seconds",
            "1",
            "--body_timeout_seconds",
            "1",
            "--max_connections",
            "150",
            "--max_body_bytes",
            "4096",
        ],
        port=port,
        log_dir=log_dir,
        ready_path=READY,
    )
    yield server
    server.stop()


# 1. Header count and size


def test_thousands_of_headers_or_a_huge_one_are_a_431_and_others_are_served(
    transformer: Server, predictor: Server
) -> None:
    many = head(V1, *(b"x-h%d: v" % i for i in range(2_000)), length=len(ONE_RECORD))
    large = head(V1, b"x-large: " + b"a" * 40_000, length=len(ONE_RECORD))
    for server in (transformer, predictor):
        with ThreadPoolExecutor(10) as pool:
            sent = [pool.submit(answer_to, server, raw + ONE_RECORD) for raw in [many] * 8]
            sent += [pool.submit(answer_to, server, raw + ONE_RECORD) for raw in [large] * 2]
            assert served(server)  # while they are sent
            answers = [future.result(timeout=60) for future in sent]
        assert (
            answers
            == [(431, "the request has more than 100 headers (max_header_count)")] * 8
            + [(431, "the request's head is larger than 32768 bytes (max_header_bytes)")] * 2
        )


def test_a_64_mib_header_is_refused_before_it_is_read_whole(transformer: Server) -> None:
    with contextlib.closing(connect(transformer)) as sock:
        sock.sendall(b"POST " + V1.encode() + b" HTTP/1.1\r\nx-huge: ")
        sent = 0
        with contextlib.suppress(OSError):  # the server may stop reading first
            while sent < 64 * 1024 * 1024 and not select.select([sock], [], [], 0.01)[0]:
                sock.sendall(b"a" * 65536)
                sent += 65536
        status, error = status_and_error(read_answer(sock))
    assert (status, "max_header_bytes" in error) == (431, True), error
    assert sent < 4 * 1024 * 1024, f"{sent} bytes of one header were sent before the 431"
    assert served(transformer)


# 2. Slow and half-open connections


def test_silent_and_half_sent_connections_are_closed_by_their_timeouts(
    impatient: Server,
) -> None:
    """25 connections of each kind; a request is served while they are open, and every
    one is closed within seconds (on main all stayed open for good)."""
    kinds = {
        "silent": b"",
        "half a head": b"POST " + V1.encode() + b" HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-",
        "half a body": head(V1, length=len(ONE_RECORD)) + ONE_RECORD[:10],
        "half a chunk": head(V1, b"transfer-encoding: chunked") + b"20\r\n" + ONE_RECORD[:10],
    }
    before = {
        reason: metric(impatient, "connections_refused_total", reason=reason)
        for reason in ("header_timeout", "body_timeout")
    }
    sockets = {kind: [connect(impatient) for _ in range(25)] for kind in kinds}
    try:
        for kind, sent in kinds.items():
            for sock in sockets[kind]:
                if sent:
                    sock.sendall(sent)
        assert served(impatient)  # while every one of them is open
        for kind, opened in sockets.items():
            for sock in opened:
                answer = read_answer(sock, timeout=10)
                if kind == "silent":
                    assert answer == b"", answer[:200]
                else:
                    status, error = status_and_error(answer)
                    assert status == 408 and "did not arrive within 1 s" in error, (kind, error)
                assert closed_by_server(sock, timeout=5), kind
    finally:
        for opened in sockets.values():
            for sock in opened:
                sock.close()
    assert eventually(
        lambda: (
            metric(impatient, "connections_refused_total", reason="header_timeout")
            == before["header_timeout"] + 50
            and metric(impatient, "connections_refused_total", reason="body_timeout")
            == before["body_timeout"] + 50
        )
    )
    assert served(impatient)


def test_connections_beyond_max_connections_are_a_503_counted_and_logged(
    impatient: Server,
) -> None:
    before = metric(impatient, "connections_refused_total", reason="max_connections")
    logged_before = len(impatient.log())
    held = [connect(impatient) for _ in range(150)]
    extra: list[socket.socket] = []
    try:
        time.sleep(0.3)  # accepted
        extra = [connect(impatient) for _ in range(10)]
        for sock in extra:
            status, error = status_and_error(read_answer(sock))
            assert status == 503 and "max_connections" in error, error
            assert closed_by_server(sock, timeout=5)
    finally:
        for sock in held + extra:
            sock.close()
    # The held ones are closed (header timeout, or by us): there is room again.
    assert eventually(lambda: served(impatient))
    assert metric(impatient, "connections_refused_total", reason="max_connections") == before + 10
    logged = impatient.log()[logged_before:]
    assert "refused a connection: 150 are open, the most max_connections allows" in logged
    assert logged.count("refused a connection") == 1  # one warning per 10 s, not ten


# 3. A client that hangs up


def test_a_client_that_hangs_up_is_a_499_not_a_500_and_logged_without_a_traceback(
    transformer: Server,
) -> None:
    def count(status: str) -> float:
        return metric(transformer, "requests_total", route="v1_predict", status=status)

    before = count("499"), count("500")
    logged_before = len(transformer.log())
    hanging = [connect(transformer) for _ in range(100)]
    for sock in hanging:
        sock.sendall(head(V1, b"x-request-id: hung-up", length=1000) + b'{"instances": [')
    time.sleep(0.5)  # the handlers read what came, and wait for the rest
    for sock in hanging:
        sock.close()
    assert eventually(lambda: count("499") == before[0] + 100), (count("499"), before)
    assert count("500") == before[1]
    logged = transformer.log()[logged_before:]
    assert logged.count("the client closed the connection before its answer") == 100
    assert '"level": "ERROR"' not in logged and "Traceback" not in logged, logged[-2000:]
    assert served(transformer)


# 8. Chunk extensions, compressed bodies, request ids, the predictor's address


def test_chunk_extensions_count_toward_the_body_limit(impatient: Server) -> None:
    """A one-record body (~200 bytes) sent a byte per chunk, each with an extension of
    4,000 bytes: 800 KB sent for a body under the 4 KiB limit was read to the end."""
    chunks = b"".join(b"1;ext=" + b"e" * 4000 + b"\r\n" + bytes([c]) + b"\r\n" for c in ONE_RECORD)
    with contextlib.closing(connect(impatient)) as sock:
        sock.sendall(head(V1, b"transfer-encoding: chunked"))
        with contextlib.suppress(OSError):  # the server may stop reading first
            sock.sendall(chunks + b"0\r\n\r\n")
        status, error = status_and_error(read_answer(sock))
    assert status == 413 and "larger than 4096 bytes (max_body_bytes)" in error, error
    plain = head(V1, b"transfer-encoding: chunked") + b"".join(
        b"1\r\n" + bytes([c]) + b"\r\n" for c in ONE_RECORD
    )
    with contextlib.closing(connect(impatient)) as sock:
        sock.sendall(plain + b"0\r\n\r\n")
        assert read_answer(sock).startswith(b"HTTP/1.1 200")


def test_a_gzip_body_is_a_415_not_a_400(transformer: Server, predictor: Server) -> None:
    for server in (transformer, predictor):
        response = httpx.post(
            f"{server.url}{V1}",
            content=gzip.compress(ONE_RECORD),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )
        assert response.status_code == 415, response.text
        assert "send it uncompressed" in response.json()["error"]
        assert response.headers["accept-encoding"] == "identity"


def test_an_invalid_request_id_is_never_echoed_in_the_answer_or_the_log(
    transformer: Server, predictor: Server
) -> None:
    evil = "evil<script>alert(1)</script>"
    for server, body in (
        (transformer, columnar([VALID])),
        (predictor, features_body([1], [1])),
    ):
        logged_before = len(server.log())
        by_header = httpx.post(
            f"{server.url}{V2}", content=orjson.dumps(body), headers={"x-request-id": evil}
        )
        by_body = httpx.post(f"{server.url}{V2}", content=orjson.dumps({**body, "id": evil}))
        for response in (by_header, by_body):
            assert response.status_code == 400, response.text
            assert "request id is invalid: its character 5 is not allowed" in response.text
            assert "evil" not in response.text and "script" not in response.text
        time.sleep(0.3)
        assert "evil" not in server.log()[logged_before:]
