"""A bounded soak (issue 10): 60 s at a steady rate through the full path, on fresh
servers on 127.0.0.1. Zero errors, p99 under a generous bound (this is no benchmark:
the bound only catches a stall), and resident memory of both servers growing less
than 10 % from the first 10 s to the last 10 s."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import MODEL, StartPair
from tests.unit.records import record

pytestmark = pytest.mark.slow

V1 = f"/v1/models/{MODEL}:predict"
SECONDS = 60
RATE = 40  # requests per second, spread over the clients
CLIENTS = 4
P99_BOUND_SECONDS = 0.5
WINDOW = 10


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def test_a_minute_at_a_steady_rate_has_no_errors_no_stall_and_no_leak(
    start_pair: StartPair,
) -> None:
    predictor, transformer = start_pair()
    bodies = [
        {"instances": [record(unit_price=1.0 + i % 50, store_id=f"S{i % 20:03d}")] * (1 + i % 8)}
        for i in range(64)
    ]
    latencies: list[float] = []
    errors: list[str] = []
    memory: list[tuple[float, int, int]] = []
    start = time.monotonic()
    end = start + SECONDS

    def client(offset: int) -> None:
        interval = CLIENTS / RATE
        sent = 0
        with httpx.Client(base_url=transformer.url, timeout=10) as http:
            while (due := start + offset * interval / CLIENTS + sent * interval) < end:
                time.sleep(max(0.0, due - time.monotonic()))
                began = time.monotonic()
                try:
                    response = http.post(V1, json=bodies[(sent * CLIENTS + offset) % len(bodies)])
                    if response.status_code != 200:
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                latencies.append(time.monotonic() - began)
                sent += 1

    def sample_memory() -> None:
        while time.monotonic() < end:
            memory.append(
                (
                    time.monotonic() - start,
                    rss_bytes(transformer.process.pid),
                    rss_bytes(predictor.process.pid),
                )
            )
            time.sleep(0.5)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    threads.append(threading.Thread(target=sample_memory))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SECONDS + 30)

    assert not errors, errors[:5]
    assert len(latencies) >= RATE * SECONDS * 0.9
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < P99_BOUND_SECONDS, f"p99 {p99 * 1000:.0f} ms"
    for column, name in ((1, "transformer"), (2, "predictor")):
        first = statistics.median(m[column] for m in memory if m[0] <= WINDOW)
        last = statistics.median(m[column] for m in memory if m[0] >= SECONDS - WINDOW)
        print(  # shown with -s: the figures behind the verdict
            f"soak {name}: {len(latencies)} requests, p99 {p99 * 1000:.1f} ms, "
            f"RSS {first / 2**20:.1f} -> {last / 2**20:.1f} MiB"
        )
        assert last < first * 1.10, f"{name} RSS {first / 2**20:.0f} -> {last / 2**20:.0f} MiB"
