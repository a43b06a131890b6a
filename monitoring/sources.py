"""Read served rows in batches: the capture store, a directory, or files; CSV or Parquet.

Files are opened one at a time and read batch by batch (pulled, not read ahead), so
memory holds one batch, never the window. Files whose hour partition
(``date=YYYY-MM-DD/hour=HH``) lies outside the window are not opened; files named
``.*``, ``_*`` or ``*.tmp`` (a writer's temporary names) are never read. A file that
cannot be read (corrupt, half-written, no timestamp to apply a window to) is skipped
and listed in :class:`ScanReport`, never silently dropped, never fatal. A location
that cannot be listed at all (an object store that is down) fails the job with
:class:`~monitoring.errors.Unavailable`, naming it.

Only pyarrow's core and Parquet reader are imported up front: columns become NumPy
arrays through their buffers (``Array.to_numpy`` imports pandas), model versions are
read dictionary-encoded and counted with NumPy, and ``pyarrow.compute`` is imported
only to apply a time window or convert an unusual column type.
"""

from __future__ import annotations

import logging
import posixpath
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from monitoring.errors import BadInput
from monitoring.features import FEATURE_NAMES, RAW_FIELDS, features_from_raw
from monitoring.reports import ScanSummary, SkippedFile
from monitoring.storage import filesystem, reaching
from monitoring.windows import TimeWindow

__all__ = ["FeatureBatch", "ScanReport", "SkippedFile", "feature_batches", "list_files", "scan"]

log = logging.getLogger(__name__)

TIMESTAMP = "timestamp"
MODEL_VERSION = "model_version"
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})(?:/hour=(\d{1,2}))?")


@dataclass
class ScanReport:
    """What a scan read and what it skipped, counted as it reads."""

    source: str
    files_found: int = 0
    files_read: int = 0
    rows_read: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    model_versions: Counter[str] = field(default_factory=Counter)
    _last_progress: float = 0.0

    def summary(self) -> ScanSummary:
        """What was read, for the report (a copy: later reads do not change it)."""
        return ScanSummary(
            source=self.source,
            rows=self.rows_read,
            files_found=self.files_found,
            files_read=self.files_read,
            files_skipped=tuple(self.skipped),
            model_versions=dict(self.model_versions),
        )

    def progress(self, force: bool = False) -> None:
        """Log a line at most every few seconds: files and rows read so far."""
        now = time.monotonic()
        if force or now - self._last_progress > 5:
            self._last_progress = now
            log.info(
                "read %d rows from %d/%d files of %s",
                self.rows_read,
                self.files_read,
                self.files_found,
                self.source,
            )


@dataclass(frozen=True)
class FeatureBatch:
    """One batch of rows: every feature as float64 (NaN = missing), and optional extras."""

    features: dict[str, npt.NDArray[np.float64]]
    rows: int


def list_files(uri: str, window: TimeWindow | None = None) -> tuple[pafs.FileSystem, list[str]]:
    """Readable data files under ``uri`` (or ``uri`` itself), pruned by hour partition."""
    fs, root = filesystem(uri)
    with reaching(uri):
        info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise BadInput(f"{uri!r} does not exist")
    if info.type == pafs.FileType.File:
        if _format(root) is None:
            raise BadInput(f"{uri!r}: expected a .parquet or .csv file")
        return fs, [root]
    with reaching(uri):
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
    dictionary: Sequence[str] = (),
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` (those a file has) from every readable file.

    ``uri`` may list several files or directories, separated by commas. Parquet
    columns named in ``dictionary`` are read dictionary-encoded.
    """
    located = [list_files(part.strip(), window) for part in uri.split(",") if part.strip()]
    if not located:
        raise BadInput(f"{uri!r}: no file or directory given")
    report.files_found += sum(len(paths) for _, paths in located)
    for fs, path in ((fs, path) for fs, paths in located for path in paths):
        rows_before = report.rows_read
        try:
            for batch in _read_file(fs, path, columns, window, batch_rows, dictionary):
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
    dictionary: Sequence[str] = (),
) -> Iterator[pa.RecordBatch]:
    """Batches of one file, pulled one at a time.

    pyarrow.dataset's scanner decodes ahead of a slow consumer (its memory grew with
    the file here), so Parquet is read with ParquetFile.iter_batches and CSV with the
    streaming CSV reader: each batch is decoded when asked for.
    """
    if _format(path) == "parquet":
        source = fs.open_input_file(path)
        metadata = pq.read_metadata(source)
        encoded = [c for c in dictionary if c in metadata.schema.names] or None
        parquet = pq.ParquetFile(
            source, metadata=metadata, pre_buffer=False, read_dictionary=encoded
        )
        schema = parquet.schema_arrow
        row_filter = _window_filter(schema, window)
        wanted = [c for c in dict.fromkeys([*columns, TIMESTAMP]) if c in schema.names]
        batches: Iterator[pa.RecordBatch] = parquet.iter_batches(
            batch_size=batch_rows, columns=wanted, use_threads=False
        )
    else:
        import pyarrow.csv as pacsv

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
            batch = batch.filter(row_filter(batch.column(TIMESTAMP)))
        yield batch.select(keep)


def feature_batches(
    uri: str, *, window: TimeWindow | None, batch_rows: int, report: ScanReport
) -> Iterator[FeatureBatch]:
    """Batches of model features: read as stored, or computed from raw records."""
    columns = list(dict.fromkeys([*FEATURE_NAMES, *RAW_FIELDS, MODEL_VERSION]))
    # model versions read as codes into a small dictionary: counted without strings
    batches = scan(
        uri,
        columns,
        window=window,
        batch_rows=batch_rows,
        report=report,
        dictionary=[MODEL_VERSION],
    )
    for batch in batches:
        names = set(batch.schema.names)
        if MODEL_VERSION in names:
            report.model_versions.update(_value_counts(batch.column(MODEL_VERSION)))
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


def _floats(column: pa.Array) -> npt.NDArray[np.float64]:
    """A column as float64, nulls as NaN: a view of a float64 column without nulls."""
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        import pyarrow.compute as pc

        column = pc.cast(column, pa.float64())
        kind = column.type
    data = _values(column, _numpy_dtype(kind))
    values = np.asarray(data, dtype=np.float64)
    if column.null_count:
        if values is data:
            values = values.copy()
        values[~_valid(column)] = np.nan
    return values


def _numpy_dtype(kind: pa.DataType) -> np.dtype[Any]:
    """NumPy's dtype of a fixed-width integer or floating type (without pandas)."""
    letter = "f" if pa.types.is_floating(kind) else "i" if pa.types.is_signed_integer(kind) else "u"
    return np.dtype(f"{letter}{kind.bit_width // 8}")


def _values(column: pa.Array, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """The data buffer of a fixed-width column, zero-copy (null slots hold anything)."""
    buffer = column.buffers()[1]
    if buffer is None:  # all null
        return np.zeros(len(column), dtype=dtype)
    return np.frombuffer(
        buffer, dtype=dtype, count=len(column), offset=column.offset * dtype.itemsize
    )


def _valid(column: pa.Array) -> npt.NDArray[np.bool_]:
    """True where ``column`` holds a value, from its validity bitmap."""
    bitmap = column.buffers()[0]
    if bitmap is None:
        return np.full(len(column), column.null_count == 0)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[column.offset : column.offset + len(column)].astype(bool)


def _value_counts(column: pa.Array) -> Counter[str]:
    """How often each (non-null) value occurs, as strings."""
    if not pa.types.is_dictionary(column.type):
        return Counter(str(v) for v in column.to_pylist() if v is not None)
    indices = column.indices
    codes = _values(indices, _numpy_dtype(indices.type))
    if indices.null_count:
        codes = codes[_valid(indices)]
    counts = np.bincount(codes, minlength=len(column.dictionary))
    names = column.dictionary.to_pylist()
    return Counter({str(names[i]): int(counts[i]) for i in np.flatnonzero(counts)})


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


def _window_filter(
    schema: pa.Schema, window: TimeWindow | None
) -> Callable[[pa.Array], pa.Array] | None:
    """A function of a batch's timestamp column: the mask of rows inside the window."""
    if window is None or (window.since is None and window.until is None):
        return None
    if TIMESTAMP not in schema.names:
        return None
    import pyarrow.compute as pc

    stored = schema.field(TIMESTAMP).type
    kind = stored if pa.types.is_timestamp(stored) else pa.timestamp("us", "UTC")

    def bound(value: datetime) -> pa.Scalar:
        naive = kind.tz is None
        return pa.scalar(value.replace(tzinfo=None) if naive else value, type=kind)

    def inside(column: pa.Array) -> pa.Array:
        times = column if column.type == kind else pc.cast(column, kind)
        masks: list[pa.Array] = []
        if window.since is not None:
            masks.append(pc.greater_equal(times, bound(window.since)))
        if window.until is not None:
            masks.append(pc.less(times, bound(window.until)))
        mask = masks[0] if len(masks) == 1 else pc.and_(masks[0], masks[1])
        return pc.fill_null(mask, False)

    return inside
