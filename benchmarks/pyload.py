"""A closed-loop asyncio load generator, the fallback when ``wrk`` cannot be installed.

``python -m benchmarks.pyload URL BODIES --concurrency 8 --seconds 5`` keeps
``concurrency`` requests in flight, POSTing the bodies of ``BODIES`` (one JSON body
per line) in turn, until the time or ``--max_requests`` is up, and prints one JSON
line: ``requests``, ``seconds``, ``p50_ms``, ``p99_ms`` and ``error``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx
import numpy as np

__all__ = ["drive", "main"]


async def drive(
    url: str, bodies: list[bytes], concurrency: int, seconds: float, max_requests: int
) -> dict[str, Any]:
    """Send POSTs from ``concurrency`` workers until ``seconds`` or ``max_requests``.

    Returns
    -------
    dict
        The fields of ``benchmarks.load.Measurement``.
    """
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    next_body = cycle(bodies)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline and len(latencies) < max_requests:
                sent = time.perf_counter()
                try:
                    answer = await client.post(url, content=next(next_body), headers=headers)
                    statuses["2xx" if answer.is_success else str(answer.status_code)] += 1
                except httpx.TransportError as exc:
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    failures = {k: n for k, n in statuses.items() if k != "2xx"}
    p50, p99 = np.percentile(latencies, [50, 99]) * 1e3 if latencies else (0.0, 0.0)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "error": ", ".join(f"{n} x {k}" for k, n in sorted(failures.items())) or None,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse flags, drive the URL, print the figures as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pyload")
    parser.add_argument("url")
    parser.add_argument("bodies", type=Path, help="file of JSON bodies, one per line")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max_requests", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    bodies = [line.encode() for line in args.bodies.read_text().splitlines() if line]
    figures = asyncio.run(
        drive(args.url, bodies, args.concurrency, args.seconds, args.max_requests)
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
