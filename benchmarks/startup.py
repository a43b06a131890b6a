"""``python -m benchmarks.startup``: what a pod costs to start, and to keep.

In Knative mode with ``minReplicas: 0`` the first request waits for the whole start of a
replica, and every replica holds its memory. For each server this starts a fresh
process ``--rounds`` times and measures, from just before the process is created:

- **start → ready**: until its readiness endpoint first answers 200 (the predictor's and
  the transformer's ``/v2/models/NAME/ready``, ``mlflow models serve``'s ``/ping``, the
  seed's app's ``/health``), polled every 5 ms (a TCP connect, then the GET);
- **first answer**: until its first prediction (one row) has been answered 200, sent
  as soon as it is ready;
- **RSS**: the resident memory of the process and of every process it started (its
  process group: ``mlflow models serve`` runs uvicorn as a child), summed from
  ``/proc/PID/status`` (``VmRSS``) after ``--requests`` one-row predictions (the first
  among them), each answered 200; the capturing transformer is read once it has
  written its first Parquet file (it flushes after a second here). Pages shared by
  several processes count once per process.

The servers are the predictor, the transformer with capture off and on (calling a
predictor started once, beforehand), and as anchors, on the same registered model,
``mlflow models serve`` and the seed's design (:mod:`benchmarks.baseline_app`: one
FastAPI process loading the model with ``mlflow.sklearn``, the seed's code rebuilt here;
the seed's own files are not in this repository's history). Every ratio is a median of
per-round ratios against a server measured in the same round.

The drift job is a batch job, not a server: its cost is its whole run. Its own start
is measured as process start → exit of ``python -m monitoring drift`` over a tiny
current window (500 rows, one local Parquet file), twice: with the reference the
CronJob reads (the model's baseline, fetched from the MLflow registry) and with a
local reference file (500 rows, no MLflow at all), so that what MLflow costs shows
apart from what the job does; with its peak RSS (its own ``VmHWM``, which it writes at
exit).

Rounds are interleaved: each round starts every part once, in an order rotated from
round to round, so the machine's changing load falls on all alike. One discarded
round comes first (``--warmup``), so no part pays for a cold page cache or for
compiling byte code. ``--compare_ref COMMIT`` also starts the predictor, the
transformers and the drift job from that commit's tree
(:func:`benchmarks.stack.ref_tree`), in the same rounds, and prints what this tree
costs against it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Final

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.bodies import sample_records
from benchmarks.designs import DESIGNS, Design, answer_rows
from benchmarks.stack import (
    CAPTURE_FLUSH_SECONDS,
    MODEL_URI,
    REF_SUFFIX,
    Stack,
    ref_tree,
    start_mlflow,
    stop_group,
    train,
)
from common.core.contract import FEATURE_NAMES
from harness.servers import Server, free_port, group_pids, start_server
from transformer.features import compute_features
from transformer.schema import RAW_FIELDS

__all__ = ["JOBS", "PARTS", "Job", "Part", "Sample", "group_rss_mb", "main", "report"]

_PROG: Final = "python -m benchmarks.startup"
#: ``python -m monitoring``, with its own peak RSS (``VmHWM``) written at exit to the file
#: named by ``$STARTUP_BENCH_PEAK``. Not ``wait4``'s ``ru_maxrss``: Linux carries the memory
#: of the process that spawned a child into the child's (the pre-exec image counts), and
#: this benchmark holds pandas and the request bodies.
_MONITORING_WITH_PEAK: Final = (
    "import atexit, os, re, runpy\n"
    "def peak():\n"
    "    status = open('/proc/self/status').read()\n"
    "    with open(os.environ['STARTUP_BENCH_PEAK'], 'w') as out:\n"
    "        out.write(re.search(r'VmHWM:\\s+(\\d+)', status)[1])\n"
    "atexit.register(peak)\n"
    "runpy.run_module('monitoring', run_name='__main__', alter_sys=True)\n"
)
_POLL_SECONDS: Final = 0.005
_DRIFT_ROWS: Final = 500
_DISTINCT_BODIES: Final = 50


@dataclass(frozen=True)
class Part:
    """A server whose start is measured, and how a client asks it for a prediction."""

    name: str
    """Short name, for ``--only``."""
    title: str
    """What it is, for the table."""
    design: Design
    """Which server it is (``design.server``), where and with what body it is asked."""
    anchor: bool = False
    """An anchor: every part's ratios are against it; not measured at ``--compare_ref``."""


@dataclass(frozen=True)
class Job:
    """A run of the drift job, measured from process start to exit."""

    name: str
    title: str
    registry: bool
    """The reference is the model's baseline in MLflow (else a local file)."""


def _design(name: str) -> Design:
    return next(d for d in DESIGNS if d.name == name)


SEED_APP: Final = "seed-app"
MLFLOW_SERVE: Final = "mlflow-serve"
PARTS: Final[tuple[Part, ...]] = (
    Part("predictor", "predictor", _design("predictor-v2")),
    Part("transformer", "transformer, capture off", _design("full-v2")),
    Part(
        "transformer-capture",
        "transformer, capture on",
        replace(_design("full-v2"), server="transformer-capture"),
    ),
    Part(MLFLOW_SERVE, "anchor: mlflow models serve", _design("mlflow-serve"), anchor=True),
    Part(SEED_APP, "anchor: the seed's app", _design("baseline"), anchor=True),
)
JOBS: Final[tuple[Job, ...]] = (
    Job("drift", "drift job, reference from MLflow", registry=True),
    Job("drift-local", "drift job, local reference", registry=False),
)


@dataclass(frozen=True)
class Sample:
    """One start of one part.

    For a server: seconds to ready and to its first answer, and MB resident after the
    requests. For a job: seconds to its exit (``ready``) and its peak resident MB.
    """

    ready: float = 0.0
    answer: float | None = None
    rss_mb: float = 0.0
    error: str | None = None


Results = dict[str, list[Sample]]
"""Each part's samples (``NAME`` or ``NAME@ref``), in round order."""


def main(argv: list[str] | None = None) -> int:
    """Measure with the flags in ``argv``; return 0, or 1 if a part failed."""
    args = _parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv  # echoed in the header
    # Stop the servers on SIGTERM as on Ctrl-C; the caller's handler is back on return.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    keep = args.work_dir is not None
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="startup-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    status = 1
    try:
        with contextlib.ExitStack() as cleanup:
            status = _run(args, work_dir, cleanup)
    except KeyboardInterrupt:
        print("\ninterrupted; every server started was stopped", file=sys.stderr)
        status = 130
    except (RuntimeError, TimeoutError) as exc:  # MLflow or a backend that did not start
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if status == 0 and not keep:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"logs kept in {work_dir}", file=sys.stderr)
    return status


def _parser() -> argparse.ArgumentParser:
    names = [p.name for p in PARTS if not p.anchor] + [j.name for j in JOBS]
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Start each server and the drift job N times, interleaved, and print "
        "start to ready, time to first answer and resident memory.",
    )
    add = parser.add_argument
    add("--rounds", type=_at_least(1), default=3, help="measured rounds; figures are medians (3)")
    add("--warmup", type=_at_least(0), default=1, help="discarded rounds before them (1)")
    add("--requests", type=_at_least(1), default=200, help="one-row predictions before RSS (200)")
    add(
        "--only",
        nargs="+",
        choices=names,
        metavar="NAME",
        help=f"of: {', '.join(names)} (the anchors are always measured)",
    )
    add("--tracking_uri", help="MLflow of a running stack with a promoted model (else own)")
    add("--rows", type=int, help="training rows when training its own model (training's default)")
    add("--timeout", type=float, default=240.0, help="seconds a start or a job may take (240)")
    add("--work_dir", help="keep logs and captures here (default: a temporary directory)")
    add(
        "--compare_ref",
        metavar="COMMIT",
        help="also start the predictor, the transformers and the drift job of COMMIT (its "
        "tree, this interpreter) in the same rounds, and print what this tree costs against it",
    )
    return parser


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is invalid: expected {low} or more")
        return value

    return parse


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace, work_dir: Path, cleanup: contextlib.ExitStack) -> int:
    started = time.monotonic()
    parts = [p for p in PARTS if p.anchor or args.only is None or p.name in args.only]
    jobs = [j for j in JOBS if args.only is None or j.name in args.only]
    ref_dir = None
    if args.compare_ref:
        ref_dir = ref_tree(args.compare_ref, work_dir / "ref", prog=_PROG)
    log_dir = work_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    tracking_uri = args.tracking_uri or _own_registry(work_dir, log_dir, args.rows, cleanup)
    stack = Stack(tracking_uri, log_dir, [], ref_dir=ref_dir)
    cleanup.callback(stack.close)
    items = _items(parts, jobs, compare=ref_dir is not None)
    backends = {
        "predictor" + (REF_SUFFIX if key.endswith(REF_SUFFIX) else "")
        for _, key in items
        if key.startswith("transformer")
    }
    for backend in sorted(backends):  # the transformers' predictor, started once
        _progress("starting the predictor the transformers call" + _at(backend))
        stack.start(backend)
    measure = _Measure(stack, args, work_dir, tracking_uri)
    print(_header(args, tracking_uri), flush=True)
    results: Results = {}
    for number in range(-args.warmup, args.rounds):
        shift = number % len(items)  # each part takes each place in the order in turn
        for item, key in (*items[shift:], *items[:shift]):
            sample = measure.job(item, key) if isinstance(item, Job) else measure.part(item, key)
            label = f"warm-up {number + args.warmup + 1}" if number < 0 else f"round {number + 1}"
            _progress(f"{label}/{args.rounds if number >= 0 else args.warmup} {key}", sample)
            if number >= 0:
                results.setdefault(key, []).append(sample)
    print(report(parts, jobs, results, args.compare_ref))
    print("\ncommands (ports and output directories vary):")
    commands = {**stack.commands, **measure.job_commands}
    print("\n".join(f"  {key}: {shlex.join(command)}" for key, command in commands.items()))
    print(f"\nwall time {time.monotonic() - started:.0f} s; load average {_load_average()}")
    return 1 if any(s.error for samples in results.values() for s in samples) else 0


def _items(
    parts: Sequence[Part], jobs: Sequence[Job], *, compare: bool
) -> list[tuple[Part | Job, str]]:
    """What one round starts, with its key (``NAME`` or ``NAME@ref``)."""
    items: list[tuple[Part | Job, str]] = []
    every: list[Part | Job] = [*parts, *jobs]
    for item in every:
        items.append((item, _key(item)))
        if compare and not (isinstance(item, Part) and item.anchor):
            items.append((item, _key(item) + REF_SUFFIX))
    return items


def _key(item: Part | Job) -> str:
    return item.design.server if isinstance(item, Part) else item.name


def _at(key: str) -> str:
    return " (compared commit)" if key.endswith(REF_SUFFIX) else ""


def _own_registry(
    work_dir: Path, log_dir: Path, rows: int | None, cleanup: contextlib.ExitStack
) -> str:
    _progress("starting MLflow on SQLite")
    mlflow = start_mlflow(work_dir, log_dir)
    cleanup.callback(stop_group, mlflow)
    _progress("training and promoting a model (python -m training)")
    summary = train(mlflow.url, work_dir / "data", rows)
    _progress(f"model version {summary['version']} promoted")
    return mlflow.url


class _Measure:
    """Starts one part or job and measures it; knows the bodies and the drift inputs."""

    def __init__(
        self, stack: Stack, args: argparse.Namespace, work_dir: Path, tracking_uri: str
    ) -> None:
        self.stack = stack
        self.requests: int = args.requests
        self.timeout: float = args.timeout
        self.work_dir = work_dir
        records = sample_records(_DISTINCT_BODIES, seed=1)
        self.bodies = {
            p.name: [json.dumps(p.design.body([r])).encode() for r in records] for p in PARTS
        }
        inputs = work_dir / "drift-inputs"
        inputs.mkdir(exist_ok=True)
        self.current = _features_file(inputs / "current.parquet", seed=2)
        self.reference = _features_file(inputs / "reference.parquet", seed=3)
        self.tracking_uri = tracking_uri
        self.job_commands: dict[str, list[str]] = {}
        self._runs = 0

    def part(self, part: Part, key: str) -> Sample:
        """Start ``part``'s server, wait until ready, ask it, read its RSS, stop it."""
        port = free_port()
        spec = self.stack.spec(key, port)  # before the clock: it may start a predictor
        started = time.perf_counter()
        server = start_server(
            key,
            spec.command,
            port=port,
            log_dir=self.stack.log_dir,
            env=spec.env,
            ready_path=None,
            cwd=spec.cwd,
        )
        try:
            ready = _ready_after(server, spec.ready_path, started, self.timeout)
            url = server.url + part.design.path
            bodies = self.bodies[part.name]
            with httpx.Client(timeout=60) as client:
                _ask(client, url, bodies[0])
                answer = time.perf_counter() - started
                for number in range(1, self.requests):
                    _ask(client, url, bodies[number % len(bodies)])
            if spec.capture is not None:
                _wait_for_parquet(spec.capture, CAPTURE_FLUSH_SECONDS + 10)
            return Sample(ready, answer, group_rss_mb(server.process.pid))
        except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
            return Sample(error=_one_line(exc))
        finally:
            stop_group(server)

    def job(self, job: Job, key: str) -> Sample:
        """Run the drift job to its end; its seconds and peak RSS."""
        self._runs += 1
        command = ["python", "-m", "monitoring", "drift", "--current", str(self.current)]
        command += ["--output", str(self.work_dir / "drift-reports" / f"{key}-{self._runs}")]
        if job.registry:
            command += ["--tracking_uri", self.tracking_uri, "--model_uri", MODEL_URI]
        else:
            command += ["--reference", str(self.reference)]
        self.job_commands[key] = [sys.executable if a == "python" else a for a in command]
        cwd = self.stack.ref_dir if key.endswith(REF_SUFFIX) else None
        log_path = self.stack.log_dir / f"{key}-{self._runs}.log"
        return _run_to_exit(command[3:], log_path, cwd, self.timeout)


def _features_file(path: Path, seed: int) -> Path:
    """A Parquet file of the model features of generated records, as a baseline holds them."""
    records = sample_records(_DRIFT_ROWS, seed=seed)
    features = compute_features({name: [r[name] for r in records] for name in RAW_FIELDS})
    pq.write_table(pa.table({name: features[name] for name in FEATURE_NAMES}), path)
    return path


def _ready_after(server: Server, path: str, started: float, timeout: float) -> float:
    """Seconds from ``started`` until ``path`` answers 200; fail if the server dies."""
    url = f"{server.url}{path}"
    with httpx.Client(timeout=5.0) as client:
        while time.perf_counter() - started < timeout:
            if server.process.poll() is not None:
                tail = server.log()[-2000:]
                raise RuntimeError(f"{server.name} exited with {server.process.returncode}: {tail}")
            if _accepts(server.port):
                with contextlib.suppress(httpx.TransportError):
                    if client.get(url).status_code == 200:
                        return time.perf_counter() - started
            time.sleep(_POLL_SECONDS)
    raise TimeoutError(f"{server.name} not ready in {timeout:.0f} s")


def _accepts(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port`` (cheaper than a GET)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _ask(client: httpx.Client, url: str, body: bytes) -> None:
    """One prediction: a 200 answering one row, or a RuntimeError saying what came."""
    answer = client.post(url, content=body, headers={"content-type": "application/json"})
    if answer.status_code != 200 or answer_rows(answer.json()) != 1:
        raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:300]}")


def _wait_for_parquet(directory: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(directory.rglob("*.parquet")):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no capture file in {directory} after {timeout:.0f} s")


def group_rss_mb(group: int) -> float:
    """The summed ``VmRSS`` of the live processes of process group ``group``, in MB (MiB)."""
    total_kib = 0
    for pid in group_pids(group):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


def _run_to_exit(args: list[str], log_path: Path, cwd: Path | None, timeout: float) -> Sample:
    """Run ``python -m monitoring ARGS`` to its exit: its seconds and its own peak RSS."""
    peak_path = log_path.with_suffix(".peak")
    started = time.perf_counter()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-c", _MONITORING_WITH_PEAK, *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, "STARTUP_BENCH_PEAK": str(peak_path)},
            start_new_session=True,
        )
    # A blocking wait sees the exit at once (Popen.wait(timeout) polls, up to 50 ms late);
    # a timer ends a job that overruns.
    overrun = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
    overrun.start()
    code = process.wait()
    seconds = time.perf_counter() - started
    overrun.cancel()
    if seconds >= timeout:
        return Sample(error=f"{log_path.name}: still running after {timeout:.0f} s")
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return Sample(error=f"exit {code}: {tail[0][:300]}")
    return Sample(seconds, None, int(peak_path.read_text()) / 1024)  # KiB


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[0][:300]


# The report.

Metric = Callable[[Sample], float]
_READY: Final[Metric] = lambda s: s.ready  # noqa: E731
_ANSWER: Final[Metric] = lambda s: s.answer or 0.0  # noqa: E731
_RSS: Final[Metric] = lambda s: s.rss_mb  # noqa: E731


def report(parts: Sequence[Part], jobs: Sequence[Job], results: Results, ref: str | None) -> str:
    """The tables: servers with their ratios to the anchors, the drift job, and against ``ref``.

    Figures are medians over the rounds, with their range (min-max) when there are
    several; ratios are medians of per-round ratios.
    """
    seed = results.get(_key(_part(SEED_APP)))
    mlflow = results.get(_key(_part(MLFLOW_SERVE)))
    servers: list[list[str]] = [
        ["part", "start→ready s", "first answer s", "RSS MB"]
        + ["ready/seed", "RSS/seed", "ready/mlflow", "RSS/mlflow"]
    ]
    for key, title in _rows(parts, results, ref):
        samples = results.get(key, [])
        error = _error(samples)
        servers.append(
            [title, error]
            if error
            else [
                title,
                _figure([s.ready for s in samples], 2),
                _figure([_ANSWER(s) for s in samples], 2),
                _figure([s.rss_mb for s in samples], 0),
                _times(_ratio(samples, seed, _READY)),
                _times(_ratio(samples, seed, _RSS)),
                _times(_ratio(samples, mlflow, _READY)),
                _times(_ratio(samples, mlflow, _RSS)),
            ]
        )
    lines = _aligned(servers)
    if jobs:
        runs: list[list[str]] = [["job", "start→exit s", "peak RSS MB"]]
        for key, title in _rows(jobs, results, ref):
            samples = results.get(key, [])
            error = _error(samples)
            runs.append(
                [title, error]
                if error
                else [
                    title,
                    _figure([s.ready for s in samples], 2),
                    _figure([s.rss_mb for s in samples], 0),
                ]
            )
        lines += ["", *_aligned(runs)]
    if ref:
        lines += ["", f"This tree against {ref} (medians of per-round ratios):"]
        ours: list[Part | Job] = [*(p for p in parts if not p.anchor), *jobs]
        for item in ours:
            now, then = results.get(_key(item)), results.get(_key(item) + REF_SUFFIX)
            if not now or not then or _error(now) or _error(then):
                continue
            if isinstance(item, Part):
                figures = (
                    f"start→ready {_spread(_round_ratios(now, then, _READY))}, first answer "
                    f"{_spread(_round_ratios(now, then, _ANSWER))}, RSS "
                    f"{_spread(_round_ratios(now, then, _RSS))}"
                )
            else:
                figures = (
                    f"start→exit {_spread(_round_ratios(now, then, _READY))}, peak RSS "
                    f"{_spread(_round_ratios(now, then, _RSS))}"
                )
            lines.append(f"  {item.title}: {figures}")
    return "\n".join(lines)


def _aligned(rows: list[list[str]]) -> list[str]:
    """``rows`` (the first one the heading) as lines: the first column left-aligned, the
    others right-aligned, each as wide as its widest cell; a row of two cells (a title and
    an error) runs on unaligned.
    """
    widths = [max(len(r[i]) for r in rows if len(r) > 2 or i == 0) for i in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        if len(row) == 2 < len(widths):
            return f"{row[0]:<{widths[0]}}  {row[1]}"
        numbers = zip(row[1:], widths[1:], strict=True)
        cells = [f"{row[0]:<{widths[0]}}", *(f"{c:>{w}}" for c, w in numbers)]
        return "  ".join(cells).rstrip()

    head = line(rows[0])
    return [head, "-" * len(head), *(line(r) for r in rows[1:])]


def _part(name: str) -> Part:
    return next(p for p in PARTS if p.name == name)


def _rows(
    items: Sequence[Part] | Sequence[Job], results: Results, ref: str | None
) -> list[tuple[str, str]]:
    """Each item's key and title, then its key and title at ``ref`` when measured."""
    rows: list[tuple[str, str]] = []
    for item in items:
        rows.append((_key(item), item.title))
        if ref and _key(item) + REF_SUFFIX in results:
            rows.append((_key(item) + REF_SUFFIX, f"{item.title} at {ref[:12]}"))
    return rows


def _error(samples: Sequence[Sample]) -> str | None:
    for number, sample in enumerate(samples, start=1):
        if sample.error:
            return f"ERROR in round {number}: {sample.error}"
    return None if samples else "not measured"


def _figure(values: Sequence[float], digits: int) -> str:
    """The median, and the range over the rounds when there are several.

    >>> _figure([3.2, 3.9, 3.4], 2), _figure([190.4], 0)
    ('3.40 (3.20-3.90)', '190')
    """
    text = f"{statistics.median(values):.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):.{digits}f}-{max(values):.{digits}f})"
    return text


def _round_ratios(
    samples: Sequence[Sample] | None, base: Sequence[Sample] | None, metric: Metric
) -> list[float] | None:
    if not samples or not base or _error(samples) or _error(base) or len(samples) != len(base):
        return None
    pairs = zip(samples, base, strict=True)
    return [metric(s) / metric(b) if metric(b) else float("inf") for s, b in pairs]


def _ratio(
    samples: Sequence[Sample] | None, base: Sequence[Sample] | None, metric: Metric
) -> float | None:
    ratios = _round_ratios(samples, base, metric)
    return None if ratios is None else statistics.median(ratios)


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _spread(ratios: Sequence[float] | None) -> str:
    """A median ratio with its range over the rounds.

    >>> _spread([0.6, 0.5, 0.7]), _spread([0.61]), _spread(None)
    ('0.60x (0.50x-0.70x)', '0.61x', '-')
    """
    if not ratios:
        return "-"
    text = f"{statistics.median(ratios):.2f}x"
    if len(ratios) > 1:
        text += f" ({min(ratios):.2f}x-{max(ratios):.2f}x)"
    return text


def _header(args: argparse.Namespace, tracking_uri: str) -> str:
    return "\n".join(
        [
            f"command: {_PROG} {shlex.join(args.argv)}".rstrip(),
            f"machine: {platform.node()}, {os.cpu_count()} CPUs "
            f"(allowed {sorted(os.sched_getaffinity(0))}), load average {_load_average()}; "
            f"Python {platform.python_version()}",
            "registry: "
            + (
                f"the running MLflow at {tracking_uri}"
                if args.tracking_uri
                else "own MLflow on SQLite, model trained by python -m training"
            ),
            f"rounds: {args.rounds} measured after {args.warmup} discarded, parts in an order "
            "rotated each round; figures: medians (min-max); ratios: medians of per-round ratios",
            "start→ready: process created → first 200 on its readiness path (polled every "
            f"{_POLL_SECONDS * 1000:.0f} ms); first answer: process created → first one-row "
            f"prediction answered; RSS: summed VmRSS of its process group after {args.requests} "
            "predictions (capture on: once its first file is written)",
            f"drift job: process created → exit, {_DRIFT_ROWS} current rows (local Parquet), "
            "reference from MLflow (the model's baseline) or a local file of "
            f"{_DRIFT_ROWS} rows; peak RSS: its VmHWM at exit",
            "",
        ]
    )


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _progress(message: str, sample: Sample | None = None) -> None:
    if sample is not None:
        message += (
            f": {sample.error}"
            if sample.error
            else f": {sample.ready:.2f} s"
            + (f", first answer {sample.answer:.2f} s" if sample.answer is not None else "")
            + f", {sample.rss_mb:.0f} MB"
        )
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
