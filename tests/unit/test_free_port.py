"""The test servers' ports: never one a client connection may hold (issue 20, item 14)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness import servers
from harness.servers import free_port


def _ephemeral() -> range:
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_ports_are_outside_the_ephemeral_range_and_never_repeat() -> None:
    ports = [free_port() for _ in range(200)]
    assert not set(ports) & set(_ephemeral())
    assert len(set(ports)) == len(ports)
    assert all(p >= 1024 for p in ports)


def test_a_port_another_server_holds_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    low = free_port()  # a free place outside the ephemeral range; three ports from it
    ports = range(low, low + 3)
    monkeypatch.setattr(servers, "_server_ports", lambda: ports)
    monkeypatch.setattr(servers, "_handed_out", set())
    held = []
    try:
        for port in ports[:2]:  # listened on by "another server", not handed out here
            sock = socket.socket()
            sock.bind(("127.0.0.1", port))
            sock.listen()
            held.append(sock)
        assert free_port() == ports[2]
        with pytest.raises(RuntimeError, match="no free port"):
            free_port()  # the third is handed out, the others held
    finally:
        for sock in held:
            sock.close()
