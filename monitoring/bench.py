"""Benchmark: the drift job against a plain scipy loop, time and peak memory.

``python -m monitoring.bench --rows 1000000 --rows 10000000`` writes synthetic
features (every model feature; continuous numeric features, so the reference has
as many distinct values as rows: the searchsorted worst case) to a temporary
directory, then runs, each in its own process:

- the drift job as the CronJob runs it (``python -m monitoring drift``), and
- a plain loop: every feature fully loaded with pandas, ``scipy.stats.ks_2samp``
  per feature (the seed's approach).

It prints one line per run: wall seconds, seconds of work (after the imports: each
child first imports the libraries its side needs, the job its own modules, the loop
pandas and SciPy) and peak resident memory (MiB: the child's own ``VmHWM``, which
``wait4`` would overstate, see :func:`_peak_rss_kib`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from monitoring.features import FEATURE_NAMES, KINDS

__all__ = ["main"]

_CHUNK = 1_000_000


def write_features(path: Path, rows: int, seed: int, shift: float = 0.0) -> None:
    """``rows`` synthetic feature rows, written a million at a time."""
    rng = np.random.default_rng(seed)
    writer: pq.ParquetWriter | None = None
    for start in range(0, rows, _CHUNK):
        n = min(_CHUNK, rows - start)
        columns = {
            name: (
                rng.normal(10.0 + shift, 2.0, n)
                if KINDS[name] == "numeric"
                else rng.integers(0, 20, n).astype(np.int32)
            )
            for name in FEATURE_NAMES
        }
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=100_000)
    assert writer is not None
    writer.close()


def scipy_loop(reference: str, current: str) -> None:
    """The plain approach: load everything, one ks_2samp per feature."""
    import pandas as pd
    from scipy import stats

    ref = pd.read_parquet(reference)
    cur = pd.read_parquet(current)
    for name in FEATURE_NAMES:
        stats.ks_2samp(ref[name].to_numpy(), cur[name].to_numpy())


def drift_job(reference: str, current: str, output: str) -> None:
    """The drift job, as ``python -m monitoring drift`` runs it."""
    from monitoring.__main__ import main as monitoring_main

    monitoring_main(["drift", "--reference", reference, "--current", current, "--output", output])


def _peak_rss_kib() -> int:
    """This process's peak resident memory (KiB), as the kernel counts it (VmHWM).

    Not ``wait4``'s ``ru_maxrss``: Linux carries the memory of the process that
    spawned a child into the child's ``ru_maxrss`` (the pre-exec image counts), so
    every child would weigh at least as much as this benchmark after it wrote the data.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status: the benchmark needs Linux")


def _measure(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds, then seconds after imports and peak RSS (MiB) the child prints."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed: {done.stderr[-2000:]}")
    work, peak_kib = done.stdout.strip().splitlines()[-1].split()
    return elapsed, float(work), int(peak_kib) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.bench", description=__doc__)
    parser.add_argument("--rows", type=int, action="append", help="current rows (repeatable)")
    parser.add_argument("--reference_rows", type=int, default=100_000)
    parser.add_argument("--skip_scipy_above", type=int, default=2_000_000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        # Each side first imports what it needs (timed apart from the work), and
        # nothing else: what the job leaves out is part of its memory figure.
        if args.child[0] == "drift":
            import monitoring.__main__  # noqa: F401
            import monitoring.drift  # noqa: F401
        else:
            import pandas  # noqa: F401
            import scipy.stats  # noqa: F401
        start = time.perf_counter()
        (drift_job if args.child[0] == "drift" else scipy_loop)(*args.child[1:])
        print(time.perf_counter() - start, _peak_rss_kib())
        return 0
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        root = Path(tmp)
        reference = root / "reference.parquet"
        write_features(reference, args.reference_rows, seed=1)
        print(f"reference {args.reference_rows:,} rows, {len(FEATURE_NAMES)} features")
        print(f"{'':>12}       {'':<15}  {'wall':>7}    {'work':>6}    peak RSS")
        child = [sys.executable, "-m", "monitoring.bench", "--child"]
        for rows in args.rows or [1_000_000]:
            current = root / f"current-{rows}.parquet"
            write_features(current, rows, seed=2, shift=0.02)
            runs = {"drift job": [*child, "drift", str(reference), str(current), str(root / "o")]}
            if rows <= args.skip_scipy_above:
                runs["scipy ks_2samp"] = [*child, "scipy", str(reference), str(current)]
            for label, command in runs.items():
                wall, work, mib = _measure(command)
                print(
                    f"{rows:>12,} rows  {label:<15}  {wall:6.2f} s  {work:6.2f} s  {mib:6.0f} MiB"
                )
            current.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
