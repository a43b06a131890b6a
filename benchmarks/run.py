"""``python -m benchmarks``: measure every design side by side and print one table.

By default it starts its own MLflow (SQLite in a temporary directory), trains and
promotes a model with ``python -m training``, starts each design's servers on free
127.0.0.1 ports, then runs ``--rounds`` rounds. A round measures every design at
every concurrency (single-row requests), in an order rotated from round to round,
then the 1000-row batch through the full paths and in-process; each measured run
follows a discarded warm-up run. Everything it started is stopped at the end, also
on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

from benchmarks import inprocess, report
from benchmarks.bodies import Record, sample_records, write_bodies
from benchmarks.designs import (
    BASELINE,
    BASELINE_NUMPY,
    BATCH_DESIGNS,
    DESIGNS,
    NOBATCH,
    SKLEARN,
    Design,
    answer_rows,
    ref_designs,
)
from benchmarks.load import LoadGenerator, Measurement, PythonClient, Wrk, ensure_wrk
from benchmarks.stack import (
    MODEL_URI,
    Pinning,
    Stack,
    predictor_accepts,
    ref_tree,
    start_mlflow,
    stop_group,
    train,
)
from predictor.scorer import scorer_for

__all__ = ["main"]

_BATCH = "batch"
_WHY_PINNED = (
    "every design gets the same one CPU to serve on, however many processes it runs, and "
    "the load generator never takes CPU time from the servers it measures; unpinned, a "
    "design's figures would depend on how the scheduler shares the CPUs among wrk, the "
    "servers and whatever else runs (--no_pin measures that way)."
)


def main(argv: list[str] | None = None) -> int:
    """Run the suite with the flags in ``argv``; return 0, or 1 if a design failed."""
    args = _parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # echoed in the header
    signal.signal(signal.SIGTERM, _interrupt)  # stop the servers on SIGTERM as on Ctrl-C
    keep = args.work_dir is not None
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="benchmarks-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    status = 1
    try:
        with contextlib.ExitStack() as cleanup:
            status = _run(args, work_dir, cleanup)
    except KeyboardInterrupt:
        print("\ninterrupted; every server started was stopped", file=sys.stderr)
        status = 130
    except (RuntimeError, TimeoutError) as exc:  # a server that did not start or answer
        print(f"python -m benchmarks: error: {exc}", file=sys.stderr)
        status = 1
    finally:
        if status == 0 and not keep:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"server logs and bodies kept in {work_dir}", file=sys.stderr)
    return status


def _parser() -> argparse.ArgumentParser:
    names = [d.name for d in DESIGNS] + [_BATCH]
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark the serving designs on 127.0.0.1 and print one table.",
    )
    add = parser.add_argument
    add("--rounds", type=int, default=3, help="rounds; figures are their medians (3)")
    add("--duration", type=int, default=5, help="seconds per measured run (5)")
    add("--warmup", type=int, default=1, help="seconds of the discarded run before each (1)")
    add("--concurrency", type=int, nargs="+", default=[1, 8], help="connections (1 8)")
    add("--only", nargs="+", choices=names, metavar="NAME", help=f"of: {', '.join(names)}")
    add("--tracking_uri", help="MLflow of a running stack with a promoted model (else own)")
    add("--rows", type=int, help="training rows when training its own model (training's default)")
    add("--batch_rows", type=int, default=1000, help="rows of the batch request (1000)")
    add("--distinct", type=int, default=100, help="distinct single-row bodies cycled (100)")
    add("--inprocess_repeats", type=int, default=20, help="in-process timings per round (20)")
    add("--predictor_flags", default="", help='extra predictor flags, e.g. "--max_batch_size 1"')
    add("--client", choices=["auto", "wrk", "python"], default="auto", help="load generator")
    add("--client_cpus", help="CPUs of the load generator (first allowed CPU)")
    add("--server_cpus", help="CPUs of the measured servers (the other allowed CPUs)")
    add("--no_pin", action="store_true", help="pin nothing; let the scheduler place all")
    add("--work_dir", help="keep logs and bodies here (default: a temporary directory)")
    add(
        "--compare_ref",
        metavar="COMMIT",
        help="also measure the full paths of COMMIT (its tree, this interpreter), in the same "
        "rounds, and print what this tree costs against it (needs git)",
    )
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace, work_dir: Path, cleanup: contextlib.ExitStack) -> int:
    started = time.monotonic()
    pinning = _pinning(args)
    generator = _generator(args.client, work_dir, pinning)
    designs, batch = _selected(args.only)
    ref_dir = None
    if args.compare_ref:
        ref_dir = ref_tree(args.compare_ref, work_dir / "ref")
        designs = (*designs, *ref_designs([d.name for d in designs], args.compare_ref))
    log_dir = work_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    tracking_uri = args.tracking_uri or _own_registry(
        work_dir, log_dir, args.rows, pinning.client_prefix(), cleanup
    )
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri  # for the in-process model
    stack = Stack(
        tracking_uri,
        log_dir,
        pinning.server_prefix(),
        shlex.split(args.predictor_flags),
        ref_dir=ref_dir,
    )
    cleanup.callback(stack.close)
    _start_servers(stack, (*designs, *batch))
    records = sample_records(args.distinct, seed=1)
    big = sample_records(args.batch_rows, seed=2)
    singles = {
        d.name: _target(stack, d, work_dir / f"{d.name}.jsonl", [[r] for r in records])
        for d in designs
    }
    batches = {d.name: _target(stack, d, work_dir / f"{d.name}-batch.jsonl", [big]) for d in batch}
    if singles[BASELINE].broken:
        raise RuntimeError(f"the baseline, which every ratio needs, {singles[BASELINE].broken}")

    print(_header(args, generator, pinning, stack), flush=True)
    results = report.Results(batch_rows=args.batch_rows)
    limits = _in_process_limits(big, results) if batch else []
    for number in range(args.rounds):
        shift = number % len(designs)  # each design takes each place in the order in turn
        for design in (*designs[shift:], *designs[:shift]):
            for concurrency in args.concurrency:
                run = _measure(generator, singles[design.name], concurrency, args)
                results.add(design.name, concurrency, run)
                _progress(f"round {number + 1}/{args.rounds} {design.name} c={concurrency}", run)
        for design in batch:
            run = _measure(generator, batches[design.name], 1, args)
            results.batch.setdefault(design.name, []).append(run)
            _progress(f"round {number + 1}/{args.rounds} batch {design.name}", run)
        if limits:
            _measure_in_process(limits, args.inprocess_repeats, pinning)
    _print_report(designs, batch, args, results)
    print(f"\nwall time {time.monotonic() - started:.0f} s; load average {_load_average()}")
    failed = any(r.error for runs in results.single.values() for r in runs) or any(
        r.error for runs in results.batch.values() for r in runs
    )
    return 1 if failed else 0


def _start_servers(stack: Stack, designs: Sequence[Design]) -> None:
    keys = [d.server for d in designs]
    if any(k.startswith("transformer") for k in keys):
        keys.insert(0, "predictor")  # the transformers call it: start it first
    for key in dict.fromkeys(keys):
        _progress(f"starting {key}")
        stack.start(key)


def _print_report(
    designs: Sequence[Design],
    batch: Sequence[Design],
    args: argparse.Namespace,
    results: report.Results,
) -> None:
    print(report.table(designs, args.concurrency, results))
    if batch:
        print(f"\nBatch: one {args.batch_rows}-row request at a time (concurrency 1)")
        print(report.batch_section(batch, results))
    print("\nTargets (medians of per-round ratios):")
    print("\n".join(report.verdicts(results, args.concurrency)))
    if args.compare_ref:
        print(f"\nThis tree against {args.compare_ref} (medians of per-round ratios):")
        print("\n".join(report.against_ref(results, args.concurrency, args.compare_ref)))


def _pinning(args: argparse.Namespace) -> Pinning:
    allowed = tuple(sorted(os.sched_getaffinity(0)))
    if args.no_pin or len(allowed) < 2 or shutil.which("taskset") is None:
        return Pinning(None, None)
    client = _cpu_list(args.client_cpus) or allowed[:1]
    server = _cpu_list(args.server_cpus) or tuple(c for c in allowed if c not in client)
    return Pinning(client, server)


def _cpu_list(text: str | None) -> tuple[int, ...] | None:
    return tuple(int(c) for c in text.split(",")) if text else None


def _generator(choice: str, work_dir: Path, pinning: Pinning) -> LoadGenerator:
    if choice in ("auto", "wrk"):
        executable = ensure_wrk()
        if executable is not None:
            return Wrk.create(executable, work_dir, pinning.client_prefix())
        if choice == "wrk":
            raise SystemExit("wrk is not installed and cannot be (needs root and apt-get)")
        _progress("wrk unavailable: falling back to the Python asyncio client")
    return PythonClient(pinning.client_prefix())


def _selected(only: Sequence[str] | None) -> tuple[tuple[Design, ...], tuple[Design, ...]]:
    # The baseline is always measured: every ratio is against it.
    # Both baselines always: the targets are judged against the one that scores alike.
    wanted = set(only or [d.name for d in DESIGNS] + [_BATCH]) | {BASELINE, BASELINE_NUMPY}
    if NOBATCH in wanted and not predictor_accepts("--max_batch_size"):
        _progress(f"the predictor has no --max_batch_size (no batching to turn off): no {NOBATCH}")
        wanted.discard(NOBATCH)
    if SKLEARN in wanted and not predictor_accepts("--compile_model"):
        _progress(
            f"the predictor has no --compile_model (it scores with scikit-learn): no {SKLEARN}"
        )
        wanted.discard(SKLEARN)
    designs = tuple(d for d in DESIGNS if d.name in wanted)
    return designs, (BATCH_DESIGNS if _BATCH in wanted else ())


def _own_registry(
    work_dir: Path,
    log_dir: Path,
    rows: int | None,
    prefix: Sequence[str],
    cleanup: contextlib.ExitStack,
) -> str:
    _progress("starting MLflow on SQLite")
    # On the load generator's CPU: MLflow is idle while measuring, but what little it
    # does must not land on the servers' CPU.
    mlflow = start_mlflow(work_dir, log_dir, prefix=prefix)
    cleanup.callback(stop_group, mlflow)
    _progress("training and promoting a model (python -m training)")
    summary = train(mlflow.url, work_dir / "data", rows)
    _progress(f"model version {summary['version']} promoted")
    return mlflow.url


@dataclass(frozen=True)
class _Target:
    """Where one design is measured, with which bodies, and why it cannot be (if so)."""

    url: str
    bodies: Path
    broken: str | None


def _target(
    stack: Stack, design: Design, path: Path, batches: Sequence[Sequence[Record]]
) -> _Target:
    """Write the design's bodies, one per batch of records, and try the first one."""
    bodies = write_bodies(path, [design.body(records) for records in batches])
    url = stack.servers[design.server].url + design.path
    return _Target(url, bodies, _smoke_test(url, bodies, rows=len(batches[0])))


def _smoke_test(url: str, bodies: Path, rows: int) -> str | None:
    # A design answering errors fast must not pass for fast: check one real answer first.
    body = bodies.read_text().splitlines()[0]
    try:
        answer = httpx.post(
            url, content=body, headers={"content-type": "application/json"}, timeout=60
        )
        answered = answer_rows(answer.json()) if answer.status_code == 200 else 0
    except (httpx.HTTPError, ValueError) as exc:
        return f"failed a {rows}-row request: {exc}"
    if answered != rows:
        return f"answered {answer.status_code} to a {rows}-row request: {answer.text[:300]}"
    return None


def _measure(
    generator: LoadGenerator, target: _Target, concurrency: int, args: argparse.Namespace
) -> Measurement:
    if target.broken:
        return Measurement(0, 0.0, 0.0, 0.0, error=target.broken)
    try:
        if args.warmup > 0:
            generator.run(target.url, target.bodies, concurrency, args.warmup)
        return generator.run(target.url, target.bodies, concurrency, args.duration)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        # The last line of a failed generator's output says why (e.g. connection refused).
        reason = (str(exc).strip().splitlines() or ["no output"])[-1][:200]
        return Measurement(0, 0.0, 0.0, 0.0, error=f"load generator failed: {reason}")


def _in_process_limits(
    records: Sequence[Record], results: report.Results
) -> list[tuple[list[float], Callable[[], object]]]:
    """The in-process calls timed each round, each with the list its timings go to."""
    import mlflow.sklearn  # only when the batch section needs it: a slow import

    estimator = mlflow.sklearn.load_model(MODEL_URI)
    limits = [
        (results.in_process, inprocess.features_and_predict(estimator, records)),
        (results.in_process_validated, inprocess.validate_features_predict(estimator, records)),
    ]
    # The predictor's scorer has predict_proba too: the limit of our own design.
    numpy_scorer = scorer_for(estimator)
    if numpy_scorer.compiled:
        limits.append(
            (results.in_process_numpy, inprocess.features_and_predict(numpy_scorer, records))
        )
    else:
        _progress(f"no in-process NumPy limit: {numpy_scorer.note}")
    return limits


def _measure_in_process(
    limits: Sequence[tuple[list[float], Callable[[], object]]], repeats: int, pinning: Pinning
) -> None:
    # On the servers' CPUs: the limit is what one server CPU could do without HTTP.
    with inprocess.on_cpus(pinning.server):
        for timings, call in limits:
            timings.append(inprocess.median_seconds(call, repeats))


def _header(
    args: argparse.Namespace,
    generator: LoadGenerator,
    pinning: Pinning,
    stack: Stack,
) -> str:
    example = generator.command("URL", Path("BODIES.jsonl"), 8, args.duration)
    lines = [
        f"command: python -m benchmarks {shlex.join(args.argv)}".rstrip(),
        f"machine: {platform.node()}, {os.cpu_count()} CPUs "
        f"(allowed {sorted(os.sched_getaffinity(0))}), load average {_load_average()}; "
        f"Python {platform.python_version()}",
        f"load generator: {generator.name}{_wrk_version(generator)}, closed loop, "
        f"e.g. {shlex.join(example)}",
        f"pinning: {pinning.describe()}",
        *([f"  why: {_WHY_PINNED}"] if pinning.client is not None else []),
        "registry: "
        + (
            f"the running MLflow at {args.tracking_uri}"
            if args.tracking_uri
            else "own MLflow on SQLite (pinned with the load generator), model trained by "
            "python -m training"
        ),
    ]
    lines += [
        f"runs: {args.warmup} s warm-up (discarded), then {args.duration} s measured, per "
        f"design and concurrency ({', '.join(map(str, args.concurrency))}); {args.rounds} "
        "round(s), design order rotated each round",
        "figures: medians over rounds; ratios: medians of per-round ratios against the "
        "baseline of the same round",
        f"bodies: single-row requests cycle through {args.distinct} distinct generated "
        f"records; batch: one {args.batch_rows}-row request",
        f"extra predictor flags: {args.predictor_flags or '(none)'}; the transformer calls "
        "the predictor in V2 with binary tensors (its default) unless the protocol "
        "column says otherwise",
        "servers:",
        *(f"  {key}: {shlex.join(command)}" for key, command in stack.commands.items()),
        "",
    ]
    return "\n".join(lines)


def _wrk_version(generator: LoadGenerator) -> str:
    if not isinstance(generator, Wrk):
        return ""
    done = subprocess.run([generator.executable, "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()
    return f" ({first[0].split(' Copyright')[0]})" if first else ""


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _progress(message: str, run: Measurement | None = None) -> None:
    if run is not None:
        message += (
            f": {run.error}"
            if run.error
            else f": {run.rps:.0f} req/s, p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms"
        )
    print(message, file=sys.stderr, flush=True)
