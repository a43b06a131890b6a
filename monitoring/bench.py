"""Benchmark: the drift job against a plain scipy loop, time and peak memory.

``python -m monitoring.bench --rows 1000000 --rows 10000000`` writes synthetic
features (every model feature; continuous numeric features, so the reference has
as many distinct values as rows: the searchsorted worst case) to a temporary
directory, then runs, each in its own process, measured by ``wait4``:

- the drift job as the CronJob runs it (``python -m monitoring drift``), and
- a plain loop: every feature fully loaded with pandas, ``scipy.stats.ks_2samp``
  per feature (the seed's approach).

It prints one line per run: wall seconds and peak resident memory (MiB), after a
line per side for the interpreter and its imports alone, so the memory the data
takes can be read off.
"""

from __future__ import annotations

import argparse
import os
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
_IMPORTS = {
    "drift job": "import monitoring.__main__, monitoring.drift, monitoring.publish, "
    "monitoring.html",
    "scipy ks_2samp": "import pandas, pyarrow.parquet, scipy.stats",
}


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


def _measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``command`` run to completion."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        assert process.stderr is not None
        raise RuntimeError(f"{command} failed: {process.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.bench", description=__doc__)
    parser.add_argument("--rows", type=int, action="append", help="current rows (repeatable)")
    parser.add_argument("--reference_rows", type=int, default=100_000)
    parser.add_argument("--skip_scipy_above", type=int, default=2_000_000)
    parser.add_argument("--scipy_loop", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scipy_loop:
        scipy_loop(*args.scipy_loop)
        return 0
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        root = Path(tmp)
        reference = root / "reference.parquet"
        write_features(reference, args.reference_rows, seed=1)
        print(f"reference {args.reference_rows:,} rows, {len(FEATURE_NAMES)} features")
        # What each side costs before any data: the interpreter and its imports.
        for label, code in _IMPORTS.items():
            seconds, mib = _measure([sys.executable, "-c", code])
            print(f"{'imports only':>17}  {label:<15}  {seconds:7.2f} s  {mib:8.0f} MiB peak")
        for rows in args.rows or [1_000_000]:
            current = root / f"current-{rows}.parquet"
            write_features(current, rows, seed=2, shift=0.02)
            job = [sys.executable, "-m", "monitoring", "drift", "--reference", str(reference)]
            job += ["--current", str(current), "--output", str(root / "out")]
            seconds, mib = _measure(job)
            print(f"{rows:>12,} rows  drift job        {seconds:7.2f} s  {mib:8.0f} MiB peak")
            if rows <= args.skip_scipy_above:
                loop = [sys.executable, "-m", "monitoring.bench", "--scipy_loop"]
                seconds, mib = _measure([*loop, str(reference), str(current)])
                print(f"{rows:>12,} rows  scipy ks_2samp   {seconds:7.2f} s  {mib:8.0f} MiB peak")
            current.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
