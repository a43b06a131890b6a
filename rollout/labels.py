"""Ground truth for ``rollout run --labels``: each version's accuracy on one interval.

Two locations, as ``python -m monitoring performance`` takes them: ``--current``, the
capture store the transformer writes (Parquet, partitioned ``date=YYYY-MM-DD/hour=HH``,
one row per served row with its ``model_version`` and ``predicted_class``), and
``--labels``, CSV or Parquet files of ``request_id``, ``row``, ``label``. Each is a local
path or an object store's URI (:func:`common.core.storage.filesystem`), a file or a
directory, or several separated by commas.

The captured rows of the interval (their ``timestamp`` in ``[since, until)``; hour
partitions outside it are not opened) are joined to the labels by
:mod:`common.core.labels`, the rules of the performance job: a label joins the same row
there and here, or is refused for the same reason. A file that cannot be read is
skipped and named in the result; a location that does not exist, or an object store
that does not answer, is a :class:`~rollout.errors.LabelsUnavailable`: the check is then
skipped, and the run goes on with the other checks.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from common.core import storage
from common.core.labels import (
    LABEL_COLUMNS,
    PREDICTION_COLUMNS,
    TEXT_COLUMNS,
    join_labels,
    keyed_rows,
)
from rollout.errors import LabelsUnavailable, RolloutError

__all__ = ["Labelled", "check_location", "labelled_by_version"]

_FORMATS = (".parquet", ".pq", ".csv")
_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{1,2})(?:/|$)")


@dataclass
class Labelled:
    """What the join found on the interval."""

    correct: dict[str, int] = field(default_factory=dict)
    """Labelled rows each version predicted right."""
    labelled: dict[str, int] = field(default_factory=dict)
    """Rows of each version with a label."""
    captured_rows: int = 0
    label_rows: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    """Rows not joined, by reason (captured and label rows)."""
    skipped_files: list[str] = field(default_factory=list)

    def of(self, version: str) -> tuple[int, int]:
        """``(correct, labelled)`` of ``version``."""
        return self.correct.get(version, 0), self.labelled.get(version, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "captured_rows": self.captured_rows,
            "label_rows": self.label_rows,
            "refused": self.refused,
            "skipped_files": self.skipped_files,
        }


def check_location(location: str, flag: str) -> None:
    """Before a run: a local ``location`` must exist; a URI must be one pyarrow opens."""
    for part in _parts(location):
        try:
            fs, path = storage.filesystem(part)
        except ValueError as exc:
            raise RolloutError(f"{flag}={part!r} is invalid: {exc}") from exc
        if storage.is_local(part) and fs.get_file_info(path).type == pafs.FileType.NotFound:
            raise RolloutError(f"{flag}={part!r} does not exist")


def labelled_by_version(current: str, labels: str, since: datetime, until: datetime) -> Labelled:
    """Each version's labelled and correct rows among those captured in ``[since, until)``.

    Raises
    ------
    LabelsUnavailable
        When a location does not exist or cannot be listed.
    """
    skipped: list[str] = []
    refused_predictions: Counter[str] = Counter()
    refused_labels: Counter[str] = Counter()
    predictions = keyed_rows(
        _read(current, PREDICTION_COLUMNS, skipped, since, until), refused_predictions
    )
    label_rows = keyed_rows(_read(labels, LABEL_COLUMNS, skipped), refused_labels)
    joined = join_labels(
        predictions,
        label_rows,
        refused_predictions=refused_predictions,
        refused_labels=refused_labels,
    )
    known = joined[joined["label"].notna()]
    right = known["label"] == known["predicted_class"]
    return Labelled(
        correct={str(k): int(v) for k, v in right.groupby(known["model_version"]).sum().items()},
        labelled={str(k): int(v) for k, v in known.groupby("model_version").size().items()},
        captured_rows=len(predictions),
        label_rows=len(label_rows),
        refused={
            **{f"captured: {k}": v for k, v in refused_predictions.items()},
            **{f"labels: {k}": v for k, v in refused_labels.items()},
        },
        skipped_files=skipped,
    )


def _parts(location: str) -> list[str]:
    return [part.strip() for part in location.split(",") if part.strip()]


def _read(
    location: str,
    columns: Sequence[str],
    skipped: list[str],
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """The rows of every readable file under ``location`` (in ``[since, until)`` if given)."""
    frames = []
    for part in _parts(location):
        fs, paths = _files(part, since, until)
        for path in paths:
            try:
                frame = _read_file(fs, path, columns)
            except (pa.ArrowException, OSError, ValueError) as exc:
                skipped.append(f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                continue
            if since is not None and until is not None:
                times = pd.to_datetime(frame["timestamp"], utc=True)
                frame = frame[(times >= since) & (times < until)]
            frames.append(frame)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return pd.concat(frames, ignore_index=True)


def _files(
    location: str, since: datetime | None, until: datetime | None
) -> tuple[pafs.FileSystem, list[str]]:
    try:
        fs, root = storage.filesystem(location)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            raise LabelsUnavailable(f"{location!r} does not exist")
        if info.type == pafs.FileType.File:
            return fs, [root]
        found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise LabelsUnavailable(f"{location!r} cannot be read: {reason}") from exc
    paths = []
    for file in found:
        relative = posixpath.relpath(file.path, root)
        hidden = any(p.startswith((".", "_")) or p.endswith(".tmp") for p in relative.split("/"))
        if file.type != pafs.FileType.File or hidden or not file.path.lower().endswith(_FORMATS):
            continue
        if since is not None and until is not None and not _overlaps(relative, since, until):
            continue
        paths.append(file.path)
    return fs, sorted(paths)


def _overlaps(relative: str, since: datetime, until: datetime) -> bool:
    """False only for a file in an hour partition wholly outside ``[since, until)``."""
    match = _PARTITION.search(relative)
    if match is None:
        return True
    hour = datetime.strptime(match[1], "%Y-%m-%d").replace(hour=int(match[2]), tzinfo=UTC)
    return hour < until and since < hour + timedelta(hours=1)


def _read_file(fs: pafs.FileSystem, path: str, columns: Sequence[str]) -> pd.DataFrame:
    """``columns`` of one CSV or Parquet file (names read as text from CSV)."""
    if path.lower().endswith(".csv"):
        import pyarrow.csv as pacsv

        with fs.open_input_stream(path) as stream:
            table = pacsv.read_csv(
                stream,
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in TEXT_COLUMNS}
                ),
            )
        names = table.schema.names
    else:
        import pyarrow.parquet as pq

        with fs.open_input_file(path) as source:
            parquet = pq.ParquetFile(source)
            names = parquet.schema_arrow.names
            if set(columns) <= set(names):
                table = parquet.read(columns=list(columns), use_threads=False)
    missing = [c for c in columns if c not in names]
    if missing:
        raise ValueError(f"missing column(s) {missing}; expected {list(columns)}")
    frame: pd.DataFrame = table.select(list(columns)).to_pandas()
    return frame
