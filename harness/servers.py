"""Start real servers as processes on free 127.0.0.1 ports, and stop them.

Used by the integration tests and the benchmarks; each server logs to its own
file so a failing test can show why a server did not come up, and leads its own
process group so that :func:`stop_group` can stop whatever it started itself.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

__all__ = [
    "Server",
    "free_port",
    "group_pids",
    "running",
    "start_mlflow",
    "start_server",
    "stop_group",
]


#: Where the kernel picks a client connection's local port; read once.
_EPHEMERAL_RANGE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Ports below this are left to well-known and registered services.
_LOWEST_PORT: Final = 10_000
#: Handed out by this process already: two calls before either server binds differ.
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(n) for n in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default
    return low, high


def _server_ports() -> range:
    """The widest range of ports outside the ephemeral range (and above the well-known)."""
    low, high = _ephemeral_range()
    below, above = range(_LOWEST_PORT, low), range(high + 1, 65_536)
    return below if len(below) >= len(above) else above


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, outside the ephemeral range.

    Binding port 0 would hand out an ephemeral port, which a client connection may
    take as its local port before the server binds it (``EADDRINUSE``, seen in CI).
    A port outside the range is never a client's; one taken by another server is
    refused by the bind check, and this process never hands out the same port twice.
    """
    ports = _server_ports()
    for _ in range(1_000):
        port = random.choice(ports)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


@dataclass
class Server:
    """A running server process and where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def wait_ready(self, path: str, timeout: float = 120.0) -> None:
        """Poll ``path`` until it answers 200; fail with the server's log if it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{self.name} not ready in {timeout}s:\n{self.log()[-4000:]}")


def start_server(
    name: str,
    args: Sequence[str],
    *,
    port: int,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    ready_path: str | None = None,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> Server:
    """Start ``args`` (``python`` is this interpreter) and wait until it is ready.

    ``cwd``, when given, is where it runs: ``python -m NAME`` imports NAME from there first.
    """
    log_path = log_dir / f"{name}-{port}.log"
    command = [sys.executable if a == "python" else a for a in args]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            cwd=cwd,
        )
    server = Server(name, process, port, log_path)
    if ready_path is not None:
        server.wait_ready(ready_path, timeout)
    return server


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Stop ``server`` on leaving the block, whatever happens inside it."""
    try:
        yield server
    finally:
        server.stop()


def start_mlflow(
    root: Path,
    log_dir: Path,
    *,
    port: int | None = None,
    prefix: Sequence[str] = (),
    artifacts_destination: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Server:
    """``mlflow server`` on SQLite with proxied artifacts under ``root``.

    ``port`` defaults to a free one; ``prefix`` runs it under e.g. ``taskset``;
    ``artifacts_destination`` (e.g. ``s3://bucket/mlflow``, with the AWS variables
    in ``env``) replaces ``root/artifacts``. Clients reach the artifacts through the
    server (``mlflow-artifacts:``) either way.
    """
    port = port or free_port()
    return start_server(
        "mlflow",
        [
            *prefix,
            "python",
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            artifacts_destination or str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        port=port,
        log_dir=log_dir,
        # MLflow's job runner starts eight worker processes nothing here uses.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})},
        ready_path="/health",
        timeout=180,
    )


def stop_group(server: Server, timeout: float = 15.0) -> None:
    """Stop ``server``, then anything left in its process group (it leads its own session).

    ``mlflow server`` (job consumers) and ``mlflow models serve`` (uvicorn) run
    children; stopping the parent alone could leave them running.
    """
    server.stop(timeout)
    group = server.process.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(group):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        deadline = time.monotonic() + timeout / 3
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)


def _group_alive(group: int) -> bool:
    return bool(group_pids(group))


def group_pids(group: int) -> list[int]:
    """The live processes of process group ``group`` (a server and what it started).

    Zombies do not count: in a container nobody may reap them, yet they serve nothing.
    """
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            # The command name is in parentheses and may hold spaces: split after it.
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == group and state != "Z":
                pids.append(int(stat.parent.name))
    return pids
