"""Read served rows in batches: the capture store, a directory, or files; CSV or Parquet.

Files are opened one at a time and read batch by batch (pulled, not read ahead), so
memory holds one batch, never the window. Files whose hour partition
(``date=YYYY-MM-DD/hour=HH``) lies outside the window are not opened; files named
``.*``, ``_*`` or ``*.tmp`` (a writer's temporary names) are never read. A file that
cannot be read (corrupt, half-written, another schema, a feature column of strings, no
timestamp to apply a window to) is skipped and listed in :class:`ScanReport` with its
reason, never silently dropped, never fatal. Raw records are checked row by row by the
transformer's own rules (:func:`transformer.schema.validate_columns`): an invalid one
(``2026-02-30``, ``Ixyz``, an unknown category) is refused and counted by reason, and the
rest of its batch is used. A local directory is walked following symbolic links, but
never into a directory already walked (a loop), and a file reached twice is read once. A
location that cannot be listed at all (an object store that is down) fails the job with
:class:`~monitoring.errors.Unavailable`, naming it.

Only pyarrow's core and Parquet reader are imported up front: columns become NumPy
arrays through their buffers (``Array.to_numpy`` imports pandas), model versions are
read dictionary-encoded and counted with NumPy, and ``pyarrow.compute`` is imported
only to apply a time window or convert an unusual column type.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from common.core.redact import redact_text
from monitoring.errors import BadInput
from monitoring.features import FEATURE_NAMES, RAW_FIELDS, features_from_raw
from monitoring.reports import ScanSummary, SkippedFile
from monitoring.storage import filesystem, reaching
from monitoring.windows import TimeWindow
from transformer.errors import InvalidRecord
from transformer.schema import validate_columns

__all__ = ["FeatureBatch", "ScanReport", "SkippedFile", "feature_batches", "list_files", "scan"]

log = logging.getLogger(__name__)

TIMESTAMP = "timestamp"
MODEL_VERSION = "model_version"
_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})(?:/hour=(\d{1,2}))?")
# validate_columns' first problem, with where=None: "date[0]='2026-02-30' is invalid: ..."
_PROBLEM = re.compile(r"^(\w+)\[\d+\]=.*? is invalid: ([^;]*)")
_MISSING = re.compile(r"^row\[\d+\] is missing required fields? ([\w, ]+)")
T = TypeVar("T")


@dataclass
class ScanReport:
    """What a scan read and what it skipped, counted as it reads."""

    source: str
    files_found: int = 0
    files_read: int = 0
    rows_read: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    model_versions: Counter[str] = field(default_factory=Counter)
    rows_refused: Counter[str] = field(default_factory=Counter)
    """Rows read but not used, by reason."""
    _last_progress: float = 0.0

    def summary(self) -> ScanSummary:
        """What was read, for the report (a copy: later reads do not change it); the
        source's credentials, if its URI holds any, hidden."""
        return ScanSummary(
            source=redact_text(self.source),
            rows=self.rows_read,
            files_found=self.files_found,
            files_read=self.files_read,
            files_skipped=tuple(self.skipped),
            model_versions=dict(self.model_versions),
            rows_refused=dict(self.rows_refused),
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
    if isinstance(fs, pafs.LocalFileSystem):
        found = _local_files(root)
    else:
        with reaching(uri):
            infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
        found = [f.path for f in infos if f.type == pafs.FileType.File]
    paths = sorted(
        path
        for path in found
        if _format(path) is not None and not _hidden(posixpath.relpath(path, root))
    )
    if window is not None:
        paths = [p for p in paths if _partition_overlaps(p, window)]
    return fs, paths


def _local_files(root: str) -> list[str]:
    """Files under a local directory, following symbolic links but never a loop.

    A directory whose real path was already walked is not entered again, and a file
    whose real path was already listed is not listed again: each file is read once.
    """
    walked = {os.path.realpath(root)}
    files: dict[str, str] = {}  # real path -> the first path it was found by

    def unreadable(error: OSError) -> None:
        log.warning("cannot list %s: %s", error.filename, error.strerror)

    for directory, subdirectories, names in os.walk(root, onerror=unreadable, followlinks=True):
        kept = []
        for name in sorted(subdirectories):
            real = os.path.realpath(os.path.join(directory, name))
            if real in walked:
                log.info("not walking %s again (it is %s)", os.path.join(directory, name), real)
                continue
            walked.add(real)
            kept.append(name)
        subdirectories[:] = kept
        for name in names:
            path = os.path.join(directory, name)
            files.setdefault(os.path.realpath(path), path)
    return [path for real, path in files.items() if os.path.isfile(real)]


def scan(
    uri: str,
    columns: Sequence[str],
    *,
    window: TimeWindow | None,
    batch_rows: int,
    report: ScanReport,
    dictionary: Sequence[str] = (),
    column_types: dict[str, pa.DataType] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` (those a file has) from every readable file.

    ``uri`` may list several files or directories, separated by commas. Parquet
    columns named in ``dictionary`` are read dictionary-encoded; CSV columns named in
    ``column_types`` are read as that type (``007`` stays a string).
    """
    return scan_as(
        uri,
        columns,
        lambda batch: batch,
        window=window,
        batch_rows=batch_rows,
        report=report,
        dictionary=dictionary,
        column_types=column_types,
    )


def scan_as(
    uri: str,
    columns: Sequence[str],
    convert: Callable[[pa.RecordBatch], T],
    *,
    window: TimeWindow | None,
    batch_rows: int,
    report: ScanReport,
    dictionary: Sequence[str] = (),
    column_types: dict[str, pa.DataType] | None = None,
    check: Callable[[pa.Schema], str | None] | None = None,
) -> Iterator[T]:
    """:func:`scan`, each batch passed through ``convert`` while its file is open.

    ``check`` is given each file's schema before any row is read: a reason it returns
    skips the file. A ``ValueError`` or Arrow error of ``convert`` skips the rest of
    the file, as a file that cannot be read.
    """
    located = [list_files(part.strip(), window) for part in uri.split(",") if part.strip()]
    if not located:
        raise BadInput(f"{uri!r}: no file or directory given")
    listed = [(fs, path) for fs, paths in located for path in paths]
    report.files_found += len(listed)
    seen: set[str] = set()
    for fs, path in listed:
        if isinstance(fs, pafs.LocalFileSystem):
            real = os.path.realpath(path)
            if real in seen:  # the same file given twice (two parts, or a link)
                report.files_found -= 1
                continue
            seen.add(real)
        rows_before = report.rows_read
        try:
            for batch in _read_file(
                fs, path, columns, window, batch_rows, dictionary, column_types, check
            ):
                if batch.num_rows:
                    converted = convert(batch)
                    report.rows_read += batch.num_rows
                    yield converted
            report.files_read += 1
            report.progress()
        except _Unusable as exc:
            log.warning("skipping %s: %s", path, exc)
            report.skipped.append(SkippedFile(path, str(exc)))
        except (pa.ArrowException, OSError, ValueError) as exc:
            read = report.rows_read - rows_before
            message = redact_text(str(exc)).splitlines()[0][:200]
            reason = f"unreadable ({type(exc).__name__}: {message})"
            if read:
                reason += f" after {read} rows"
            log.warning("skipping %s: %s", path, reason)
            report.skipped.append(SkippedFile(path, reason))


class _Unusable(Exception):
    """A file this job cannot use (its schema): the message says why."""


def _read_file(
    fs: pafs.FileSystem,
    path: str,
    columns: Sequence[str],
    window: TimeWindow | None,
    batch_rows: int,
    dictionary: Sequence[str] = (),
    column_types: dict[str, pa.DataType] | None = None,
    check: Callable[[pa.Schema], str | None] | None = None,
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
            fs.open_input_stream(path),
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            convert_options=pacsv.ConvertOptions(column_types=column_types or {}),
        )
        schema = reader.schema
        row_filter = _window_filter(schema, window)
        batches = iter(reader)
    if window is not None and (window.since or window.until) and row_filter is None:
        raise _Unusable(f"no {TIMESTAMP!r} column to apply the window to")
    problem = check(schema) if check is not None else None
    if problem is not None:
        raise _Unusable(problem)
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

    def convert(batch: pa.RecordBatch) -> FeatureBatch:
        names = set(batch.schema.names)
        if MODEL_VERSION in names:
            report.model_versions.update(_value_counts(batch.column(MODEL_VERSION)))
        if set(FEATURE_NAMES) <= names:
            features = {name: _floats(batch.column(name)) for name in FEATURE_NAMES}
            return FeatureBatch(features, batch.num_rows)
        return _raw_features(batch, report)

    # model versions read as codes into a small dictionary: counted without strings
    yield from scan_as(
        uri,
        columns,
        convert,
        window=window,
        batch_rows=batch_rows,
        report=report,
        dictionary=[MODEL_VERSION],
        check=_feature_schema_problem,
    )


def _feature_schema_problem(schema: pa.Schema) -> str | None:
    """Why a file's rows cannot give the model's features, or None when they can."""
    names = set(schema.names)
    if set(FEATURE_NAMES) <= names:
        wrong = {
            name: str(schema.field(name).type)
            for name in FEATURE_NAMES
            if not _numeric(schema.field(name).type)
        }
        if wrong:
            listed = ", ".join(f"{name} ({kind})" for name, kind in wrong.items())
            return f"another schema: feature column(s) not numbers: {listed}"
        return None
    if set(RAW_FIELDS) <= names:
        return None
    missing = sorted(set(FEATURE_NAMES) - names)
    missing_raw = [name for name in RAW_FIELDS if name not in names]
    return (
        f"another schema: neither every feature (missing {', '.join(missing)}) "
        f"nor every raw field (missing {', '.join(missing_raw)})"
    )


def _numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
        or pa.types.is_decimal(kind)
    )


def _raw_features(batch: pa.RecordBatch, report: ScanReport) -> FeatureBatch:
    """Features of the valid raw records of ``batch``; the others counted, by reason."""
    import pandas as pd

    records = batch.select(list(RAW_FIELDS)).to_pydict()
    # a CSV reader makes dates of a column where every one is a calendar date
    records["date"] = [
        d if d is None or isinstance(d, str) else str(d)[:10] for d in records["date"]
    ]
    valid = _valid_records(records, batch.num_rows, report.rows_refused)
    if not valid:
        return FeatureBatch({name: np.empty(0) for name in FEATURE_NAMES}, 0)
    frame = pd.DataFrame({name: [v for part in valid for v in part[name]] for name in RAW_FIELDS})
    return FeatureBatch(features_from_raw(frame), len(frame))


def _valid_records(
    records: dict[str, list[Any]], rows: int, refused: Counter[str]
) -> list[dict[str, list[Any]]]:
    """The valid rows of ``records`` as validated parts, in order; the others counted.

    A batch is validated at once; one with invalid rows is halved until each invalid row
    stands alone, so a few bad rows cost a few validations of each size.
    """
    parts: list[dict[str, list[Any]]] = []

    def visit(start: int, stop: int) -> None:
        part = {name: values[start:stop] for name, values in records.items()}
        try:
            parts.append(validate_columns(part, where=None))
        except InvalidRecord as exc:
            if stop - start == 1:
                refused[_refusal(str(exc))] += 1
                return
            middle = (start + stop) // 2
            visit(start, middle)
            visit(middle, stop)

    if rows:
        visit(0, rows)
    return parts


def _refusal(message: str) -> str:
    """A raw record's problem without its value: ``date: expected a calendar date ...``.

    Counted by this key, so the number of keys is bounded by the fields and their rules.
    """
    problem = _PROBLEM.match(message)
    if problem is not None:
        return f"invalid raw record: {problem[1]}: {problem[2]}"
    missing = _MISSING.match(message)
    if missing is not None:
        return f"invalid raw record: missing {missing[1]}"
    return "invalid raw record"


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
