"""Load generators: ``wrk`` (preferred), or an asyncio client when wrk is unavailable.

Both are closed loops: ``concurrency`` connections, each sending its next request
as soon as the previous answer arrived, for a fixed time. Both cycle through a file
of request bodies (one JSON body per line) and report the same
:class:`Measurement`. Any non-2xx answer or socket error makes the run an error,
never a figure: a fast error path must not pass for a fast server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

__all__ = [
    "LoadGenerator",
    "Measurement",
    "PythonClient",
    "Wrk",
    "ensure_wrk",
    "parse_wrk_output",
]


@dataclass(frozen=True)
class Measurement:
    """One timed run against one URL at one concurrency."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    error: str | None = None
    """Why the run does not count (non-2xx answers, socket errors), or None."""

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


class LoadGenerator(Protocol):
    """Drives one URL with POSTs of the bodies in a file, for a bounded time."""

    name: str

    def command(self, url: str, bodies: Path, concurrency: int, seconds: int) -> list[str]:
        """The exact command line of a run (printed in the report header)."""
        ...

    def run(self, url: str, bodies: Path, concurrency: int, seconds: int) -> Measurement:
        """Run the load for ``seconds`` and measure it."""
        ...


# POST the bodies of a file, one per line, in turn; print exact figures at the end, so
# nothing depends on parsing wrk's human-readable units.
_WRK_SCRIPT: Final = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
local index = 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  if #bodies == 0 then error("no request bodies in " .. args[1]) end
end
function request()
  index = index % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[index])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%.1f p99_us=%.1f "
    .. "status=%d connect=%d read=%d write=%d timeout=%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""
_RESULT: Final = re.compile(r"^WRK_RESULT (?P<fields>.*)$", re.MULTILINE)
_NON_2XX: Final = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def parse_wrk_output(output: str) -> Measurement:
    """Read the figures the script's ``done`` hook prints, and any errors wrk counted.

    Examples
    --------
    >>> m = parse_wrk_output("WRK_RESULT requests=500 duration_us=5000000 p50_us=1500.0 "
    ...                      "p99_us=4000.0 status=0 connect=0 read=0 write=0 timeout=0")
    >>> m.rps, m.p50_ms, m.p99_ms, m.error
    (100.0, 1.5, 4.0, None)
    >>> parse_wrk_output("  Non-2xx or 3xx responses: 7\\nWRK_RESULT requests=7 "
    ...     "duration_us=1000000 p50_us=1.0 p99_us=1.0 status=7 connect=0 read=0 write=0 "
    ...     "timeout=0").error
    '7 non-2xx answers'
    """
    match = _RESULT.search(output)
    if match is None:
        raise RuntimeError(f"wrk printed no result line:\n{output[-2000:]}")
    fields = {k: float(v) for k, v in (kv.split("=") for kv in match["fields"].split())}
    non_2xx = max([int(fields["status"]), *(int(n) for n in _NON_2XX.findall(output))])
    socket_errors = {
        name: int(fields[name])
        for name in ("connect", "read", "write", "timeout")
        if int(fields[name]) > 0
    }
    problems = [f"{non_2xx} non-2xx answers"] if non_2xx else []
    problems += [f"{count} socket {name} errors" for name, count in socket_errors.items()]
    return Measurement(
        requests=int(fields["requests"]),
        seconds=fields["duration_us"] / 1e6,
        p50_ms=fields["p50_us"] / 1e3,
        p99_ms=fields["p99_us"] / 1e3,
        error="; ".join(problems) or None,
    )


@dataclass
class Wrk:
    """``wrk`` with one thread, run under ``prefix`` (e.g. ``taskset -c 0``).

    One thread is enough: wrk's event loop in C keeps 8 connections busy at rates
    far above what one Python server core answers.
    """

    executable: str
    script: Path
    prefix: list[str]
    name: str = "wrk"

    @classmethod
    def create(cls, executable: str, work_dir: Path, prefix: list[str]) -> Wrk:
        """Write the Lua script into ``work_dir`` and return the generator."""
        script = work_dir / "post_bodies.lua"
        script.write_text(_WRK_SCRIPT)
        return cls(executable, script, prefix)

    def command(self, url: str, bodies: Path, concurrency: int, seconds: int) -> list[str]:
        """``wrk -t1 -cN -dSs --latency -s post_bodies.lua URL -- BODIES``."""
        return [
            *self.prefix,
            self.executable,
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(self.script),
            url,
            "--",
            str(bodies),
        ]

    def run(self, url: str, bodies: Path, concurrency: int, seconds: int) -> Measurement:
        """Run wrk and parse its figures; a failing wrk raises with its output."""
        done = _run(self.command(url, bodies, concurrency, seconds), seconds)
        return parse_wrk_output(done.stdout)


@dataclass
class PythonClient:
    """The fallback: :mod:`benchmarks.pyload` (asyncio + httpx) in its own process.

    It costs far more CPU per request than wrk, so on a small machine it may limit
    the figures of the fastest designs; the report header says which generator ran.
    """

    prefix: list[str]
    name: str = "python asyncio+httpx client (benchmarks.pyload)"

    def command(self, url: str, bodies: Path, concurrency: int, seconds: int) -> list[str]:
        """``python -m benchmarks.pyload URL BODIES --concurrency N --seconds S``."""
        return [
            *self.prefix,
            sys.executable,
            "-m",
            "benchmarks.pyload",
            url,
            str(bodies),
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(seconds),
        ]

    def run(self, url: str, bodies: Path, concurrency: int, seconds: int) -> Measurement:
        """Run the client and read the JSON line it prints."""
        done = _run(self.command(url, bodies, concurrency, seconds), seconds)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        return Measurement(**figures)


def ensure_wrk() -> str | None:
    """Return the path of ``wrk``, installing Debian's package if it is missing.

    Installs only as root with ``apt-get`` present (``apt-get update`` first only if a
    plain install fails); returns None when wrk cannot be had, so the caller falls
    back to :class:`PythonClient`.
    """
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for steps in ([install], [["apt-get", "update", "-q"], install]):
        if all(
            subprocess.run(step, env=env, capture_output=True, check=False).returncode == 0
            for step in steps
        ):
            break
    return shutil.which("wrk")


def _run(command: list[str], seconds: int) -> subprocess.CompletedProcess[str]:
    # Bounded: the generator stops itself after `seconds`; the margin covers start-up
    # and the last requests' timeout.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-2000:]}"
        )
    return done
