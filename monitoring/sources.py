"""Read served rows in batches: the capture store, a directory, or files; CSV or Parquet.

Files are opened one at a time and read batch by batch (pulled, not read ahead), so
memory holds one batch, never the window. Files whose hour partition
(``date=YYYY-MM-DD/hour=HH``) lies outside the window are not opened; files named
``.*``, ``_*`` or ``*.tmp`` (a writer's temporary names) are never read. A file that
cannot be read (corrupt, half-written, no timestamp to apply a window to) is skipped
and listed in :class:`ScanReport`, never silently dropped, never fatal.
"""

from __future__ import annotations

import logging
import posixpath
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from monitoring.errors import BadInput
from monitoring.features import FEATURE_NAMES, RAW_FIELDS, features_from_raw
from monitoring.storage import filesystem
from monitoring.windows import TimeWindow

__all__ = ["FeatureBatch", "ScanReport", "SkippedFile", "feature_batches", "list_files", "scan"]

log = logging.getLogger(__name__)

TIMESTAMP = "timestamp"
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})(?:/hour=(\d{1,2}))?")


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not (fully) read, and why."""

    path: str
    reason: str


@dataclass
class ScanReport:
    """What a scan read and what it skipped."""

    source: str
    files_found: int = 0
    files_read: int = 0
    rows_read: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    model_versions: Counter[str] = field(default_factory=Counter)
    _last_progress: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows": self.rows_read,
            "files_found": self.files_found,
            "files_read": self.files_read,
            "files_skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "model_versions": dict(self.model_versions),
        }

    def progress(self, force: bool = False) -> None:
        """A line on stderr at most every few seconds: files and rows read so far."""
        now = time.monotonic()
        if force or now - self._last_progress > 5:
            self._last_progress = now
            print(
                f"read {self.rows_read} rows from {self.files_read}/{self.files_found} files "
                f"of {self.source}",
                file=sys.stderr,
            )


@dataclass(frozen=True)
class FeatureBatch:
    """One batch of rows: every feature as float64 (NaN = missing), and optional extras."""

    features: dict[str, npt.NDArray[np.float64]]
    rows: int


def list_files(uri: str, window: TimeWindow | None = None) -> tuple[pafs.FileSystem, list[str]]:
    """Readable data files under ``uri`` (or ``uri`` itself), pruned by hour partition."""
    fs, root = filesystem(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise BadInput(f"{uri!r} does not exist")
    if info.type == pafs.FileType.File:
        if _format(root) is None:
            raise BadInput(f"{uri!r}: expected a .parquet or .csv file")
        return fs, [root]
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    paths = sorted(
        f.path
        for f in found
        if f.type == pafs.FileType.File
        and _format(f.path) is not None
        and not _hidden(posixpath.relpath(f.path, root))
    )
    if window is not None:
        paths = [p for p in paths if _partition_overlaps(p, window)]
    return fs, paths


def scan(
    uri: str,
    columns: Sequence[str],
    *,
    window: TimeWindow | None,
    batch_rows: int,
    report: ScanReport,
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` (those a file has) from every readable file.

    ``uri`` may list several files or directories, separated by commas.
    """
    located = [list_files(part.strip(), window) for part in uri.split(",") if part.strip()]
    if not located:
        raise BadInput(f"{uri!r}: no file or directory given")
    report.files_found += sum(len(paths) for _, paths in located)
    for fs, path in ((fs, path) for fs, paths in located for path in paths):
        rows_before = report.rows_read
        try:
            for batch in _read_file(fs, path, columns, window, batch_rows):
                if batch.num_rows:
                    report.rows_read += batch.num_rows
                    yield batch
            report.files_read += 1
            report.progress()
        except _NoTimestamp:
            report.skipped.append(
                SkippedFile(path, f"no {TIMESTAMP!r} column to apply the window to")
            )
        except (pa.ArrowException, OSError, ValueError) as exc:
            read = report.rows_read - rows_before
            reason = f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            if read:
                reason += f" after {read} rows"
            log.warning("skipping %s: %s", path, reason)
            report.skipped.append(SkippedFile(path, reason))


class _NoTimestamp(Exception):
    """A window was asked for, and the file has no timestamp column."""


def _read_file(
    fs: pafs.FileSystem,
    path: str,
    columns: Sequence[str],
    window: TimeWindow | None,
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """Batches of one file, pulled one at a time.

    pyarrow.dataset's scanner decodes ahead of a slow consumer (its memory grew with
    the file here), so Parquet is read with ParquetFile.iter_batches and CSV with the
    streaming CSV reader: each batch is decoded when asked for.
    """
    if _format(path) == "parquet":
        parquet = pq.ParquetFile(fs.open_input_file(path), pre_buffer=False)
        schema = parquet.schema_arrow
        row_filter = _window_filter(schema, window)
        wanted = [c for c in dict.fromkeys([*columns, TIMESTAMP]) if c in schema.names]
        batches: Iterator[pa.RecordBatch] = parquet.iter_batches(
            batch_size=batch_rows, columns=wanted
        )
    else:
        reader = pacsv.open_csv(
            fs.open_input_stream(path), read_options=pacsv.ReadOptions(block_size=1 << 22)
        )
        schema = reader.schema
        row_filter = _window_filter(schema, window)
        batches = iter(reader)
    if window is not None and (window.since or window.until) and row_filter is None:
        raise _NoTimestamp
    keep = [c for c in columns if c in schema.names]
    for batch in batches:
        if row_filter is not None:
            table = pa.Table.from_batches([batch]).filter(row_filter)
            batch = table.combine_chunks().to_batches()[0] if table.num_rows else batch.slice(0, 0)
        yield batch.select(keep)


def feature_batches(
    uri: str, *, window: TimeWindow | None, batch_rows: int, report: ScanReport
) -> Iterator[FeatureBatch]:
    """Batches of model features: read as stored, or computed from raw records."""
    columns = list(dict.fromkeys([*FEATURE_NAMES, *RAW_FIELDS, "model_version"]))
    for batch in scan(uri, columns, window=window, batch_rows=batch_rows, report=report):
        names = set(batch.schema.names)
        if "model_version" in names:
            counts = pc.value_counts(batch.column("model_version")).to_pylist()
            for item in counts:
                report.model_versions[str(item["values"])] += int(item["counts"])
        if set(FEATURE_NAMES) <= names:
            features = {name: _floats(batch.column(name)) for name in FEATURE_NAMES}
        elif set(RAW_FIELDS) <= names:
            try:
                features = features_from_raw(batch.select(list(RAW_FIELDS)).to_pandas())
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                raise BadInput(
                    f"{uri!r}: raw records whose features cannot be computed: {exc}"
                ) from exc
        else:
            missing = sorted(set(FEATURE_NAMES) - names)
            raise BadInput(
                f"{uri!r}: rows have neither every feature (missing {missing}) "
                f"nor every raw field ({', '.join(RAW_FIELDS)})"
            )
        yield FeatureBatch(features, batch.num_rows)


def _floats(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.float64]:
    """A column as float64, nulls as NaN."""
    if column.null_count == 0:
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    filled = pc.fill_null(pc.cast(column, pa.float64()), float("nan"))
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)


def _format(path: str) -> str | None:
    for suffix, fmt in _FORMATS.items():
        if path.lower().endswith(suffix):
            return fmt
    return None


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) or part.endswith(".tmp") for part in relative.split("/"))


def _partition_overlaps(path: str, window: TimeWindow) -> bool:
    match = _PARTITION.search(path)
    if match is None:
        return True
    day = datetime.strptime(match[1], "%Y-%m-%d").replace(tzinfo=UTC)
    if match[2] is None:
        return any(window.overlaps_hour(day.replace(hour=h)) for h in range(24))
    return window.overlaps_hour(day.replace(hour=int(match[2])))


def _window_filter(schema: pa.Schema, window: TimeWindow | None) -> ds.Expression | None:
    if window is None or (window.since is None and window.until is None):
        return None
    if TIMESTAMP not in schema.names:
        return None
    kind = schema.field(TIMESTAMP).type
    column = ds.field(TIMESTAMP)
    if not pa.types.is_timestamp(kind):
        column = column.cast(pa.timestamp("us", "UTC"))
        kind = pa.timestamp("us", "UTC")

    def bound(value: datetime) -> pa.Scalar:
        naive = kind.tz is None
        return pa.scalar(value.replace(tzinfo=None) if naive else value, type=kind)

    condition: ds.Expression | None = None
    if window.since is not None:
        condition = column >= bound(window.since)
    if window.until is not None:
        upper = column < bound(window.until)
        condition = upper if condition is None else condition & upper
    return condition
