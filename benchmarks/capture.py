"""What capturing served rows costs: the full V1 path with capture off and on.

``python -m benchmarks.capture [--tracking_uri URL]`` starts one predictor and two
transformers in front of it, one with ``--capture_uri`` (a temporary directory),
one without, and drives them alternately with ``wrk`` (one row per request) for
``--rounds`` rounds at each concurrency, the first variant alternating; ``wrk``
runs on CPU 0, the servers on CPU 1 (``taskset``), as in ``python -m benchmarks``.
It prints per variant the median req/s and p50 over the rounds, the on/off ratios,
and the rows served and captured. Without ``--tracking_uri`` it starts MLflow and
trains a model first.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

from benchmarks.bodies import raw_v1, sample_records, write_bodies
from benchmarks.load import LoadGenerator, PythonClient, Wrk, ensure_wrk
from benchmarks.stack import MODEL, Stack, stop_group, train
from harness.servers import Server, free_port, start_mlflow, start_server

__all__ = ["main"]

_READY = f"/v2/models/{MODEL}/ready"
_PATH = f"/v1/models/{MODEL}:predict"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capture", description=__doc__)
    parser.add_argument("--tracking_uri", help="a running MLflow with the promoted model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, action="append")
    parser.add_argument(
        "--in_process",
        action="store_true",
        help="only time CaptureStore in this process: offer() per call, the writer per row",
    )
    args = parser.parse_args(argv)
    if args.in_process:
        _in_process()
        return 0
    with (
        tempfile.TemporaryDirectory(prefix="capture-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        logs = work / "logs"
        logs.mkdir()
        tracking = args.tracking_uri
        if tracking is None:
            mlflow = start_mlflow(work, logs, prefix=["taskset", "-c", "0"])
            stack.callback(stop_group, mlflow)
            train(mlflow.url, work / "data", None)
            tracking = mlflow.url
        servers = Stack(tracking, logs, ["taskset", "-c", "1"])
        stack.callback(servers.close)
        predictor = servers.start("predictor")
        capture = work / "capture"
        variants = {
            "capture off": _transformer(predictor, logs, []),
            "capture on": _transformer(predictor, logs, ["--capture_uri", str(capture)]),
        }
        for server in variants.values():
            stack.callback(stop_group, server)
        bodies = write_bodies(work / "bodies.jsonl", [raw_v1([r]) for r in sample_records(500, 1)])
        generator = _generator(work)
        results: dict[tuple[str, int], list[tuple[float, float]]] = {}
        served = 0  # requests (one row each) answered by the capturing transformer
        for number in range(args.rounds):
            for concurrency in args.concurrency or [1, 8]:
                # Alternate which variant goes first, so order effects cancel out.
                order = list(variants.items())[:: 1 if number % 2 == 0 else -1]
                for name, server in order:
                    run = generator.run(f"{server.url}{_PATH}", bodies, concurrency, args.seconds)
                    if run.error:
                        raise RuntimeError(f"{name}: {run.error}")
                    results.setdefault((name, concurrency), []).append((run.rps, run.p50_ms))
                    served += run.requests if name == "capture on" else 0
        for server in variants.values():
            server.stop()  # SIGTERM: the capturing one writes what it queued
        captured = ds.dataset(capture, format="parquet").count_rows() if capture.exists() else 0
        print(f"generator: {generator.name}; {args.rounds} rounds x {args.seconds} s; medians")
        for concurrency in args.concurrency or [1, 8]:
            off = _medians(results[("capture off", concurrency)])
            on = _medians(results[("capture on", concurrency)])
            print(
                f"c={concurrency}: off {off[0]:7.0f} req/s p50 {off[1]:5.2f} ms | "
                f"on {on[0]:7.0f} req/s p50 {on[1]:5.2f} ms | "
                f"on/off req/s {on[0] / off[0]:.3f}, p50 {on[1] / off[1]:.3f}"
            )
        print(f"rows served with capture on (as wrk counted them): {served}; captured: {captured}")
    return 0


def _in_process(calls: int = 20_000) -> None:
    """CPU time of capture itself: the request path's offer(), the writer's share per row."""
    import time

    from benchmarks.bodies import sample_records
    from common.protocol.answers import Prediction
    from transformer.capture import CaptureStore
    from transformer.features import compute_features

    records = sample_records(1, 3)
    columns = {name: [value] for name, value in records[0].items()}
    features = compute_features(columns)
    prediction = Prediction(["high", "low", "medium"], np.array([[0.2, 0.5, 0.3]]), "m", "1")
    with tempfile.TemporaryDirectory(prefix="capture-cpu-") as tmp:
        store = CaptureStore(tmp, queue_rows=calls + 1, flush_seconds=3600, batch_rows=calls + 1)
        start = time.perf_counter()
        for number in range(calls):
            store.offer(columns, features, prediction, [(f"r{number}", 1)])
        offered = time.perf_counter() - start
        start = time.process_time()
        store.close()  # writes the queue: Arrow conversion, Parquet, rename
        written = time.process_time() - start
        rows = ds.dataset(tmp, format="parquet").count_rows()
    print(
        f"offer(): {offered / calls * 1e6:.1f} us per one-row request (request path); "
        f"writer: {written / rows * 1e6:.1f} us CPU per row (background); {rows} rows"
    )


def _transformer(predictor: Server, logs: Path, flags: list[str]) -> Server:
    port = free_port()
    command = ["taskset", "-c", "1", "python", "-m", "transformer"]
    command += ["--predictor_host", f"127.0.0.1:{predictor.port}", "--http_port", str(port)]
    return start_server(
        "transformer", [*command, *flags], port=port, log_dir=logs, ready_path=_READY
    )


def _generator(work: Path) -> LoadGenerator:
    wrk = ensure_wrk()
    prefix = ["taskset", "-c", "0"]
    return Wrk.create(wrk, work, prefix) if wrk else PythonClient(prefix)


def _medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r for r, _ in runs), statistics.median(p for _, p in runs)


if __name__ == "__main__":
    sys.exit(main())
