"""Capture every served row to Parquet, off the request path.

The request path only appends references to a bounded in-memory queue
(:meth:`CaptureStore.offer`, no I/O, no conversion); a background thread drains it
in batches and writes Parquet files partitioned ``date=YYYY-MM-DD/hour=HH`` under a
directory or an object store's URI (``s3://bucket/prefix``, opened by
:func:`common.core.storage.filesystem`, as the monitoring jobs open it). Each file is
written under a hidden temporary name and then renamed, so a reader
(``python -m monitoring``) never sees half a file. A full queue or a failing store
(an object store that is down) drops rows, counts them in
``transformer_capture_dropped_rows_total`` and logs it; a request never waits for
storage and never fails because of it. :meth:`CaptureStore.close` (on SIGTERM, via
the model's ``stop`` and at exit) writes whatever is queued before the process ends.

One row per served row: ``timestamp``, ``request_id``, ``row`` (position in its
request), ``model_name``, ``model_version``, ``predicted_class``, ``classes`` and
``probabilities`` (in the order of ``classes``), each raw field of
``transformer.schema.RAW_TYPES`` as ``raw_<field>``, and every model feature under its
own name.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter, Gauge

from common.core.storage import filesystem
from common.protocol.answers import Prediction
from transformer.features import FEATURES
from transformer.schema import RAW_TYPES

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SYNTHETIC_HEADER", "CaptureStore", "capture_schema", "is_synthetic"]

log = logging.getLogger(__name__)

CAPTURED_ROWS = Counter("transformer_capture_rows", "Served rows written to the capture store.")
DROPPED_ROWS = Counter(
    "transformer_capture_dropped_rows",
    "Served rows not captured: queue_full or write_error.",
    ["reason"],
)
QUEUED_ROWS = Gauge(
    "transformer_capture_queue_rows", "Rows that waited in the queue for the latest write."
)

_WARN_EVERY_SECONDS: Final = 10.0

#: A request header that marks a request as synthetic (``helm test``, a smoke check): it is
#: served as any other, but its rows are not captured, so that drift and performance never
#: read them.
SYNTHETIC_HEADER: Final = "x-sqc-synthetic"


def is_synthetic(headers: Mapping[str, str] | None) -> bool:
    """Whether ``headers`` mark the request as synthetic (``x-sqc-synthetic: true``)."""
    return any(
        k.lower() == SYNTHETIC_HEADER and v.strip().lower() == "true"
        for k, v in (headers or {}).items()
    )


def capture_schema() -> pa.Schema:
    """The columns of every capture file.

    pyarrow is imported here and by the writer only (``CaptureStore`` opens its store
    with :func:`common.core.storage.filesystem`): a transformer that captures nothing
    does not load it.
    """
    import pyarrow as pa

    return pa.schema(
        [
            ("timestamp", pa.timestamp("us", "UTC")),
            ("request_id", pa.string()),
            ("row", pa.int32()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("predicted_class", pa.string()),
            ("classes", pa.string()),
            ("probabilities", pa.list_(pa.float64())),
            *((f"raw_{name}", kind) for name, kind in _raw_arrow_types().items()),
            *((f.name, _feature_arrow_types()[f.datatype]) for f in FEATURES),
        ]
    )


@functools.cache
def _raw_arrow_types() -> dict[str, pa.DataType]:
    """Each raw field's Arrow type, by its value type (``transformer.schema.RAW_TYPES``)."""
    import pyarrow as pa

    by_kind = {str: pa.string(), float: pa.float64(), bool: pa.bool_()}
    return {name: by_kind[kind] for name, kind in RAW_TYPES.items()}


@functools.cache
def _feature_arrow_types() -> dict[str, pa.DataType]:
    """Each feature datatype's Arrow type."""
    import pyarrow as pa

    return {"INT32": pa.int32(), "FP64": pa.float64()}


@dataclass(frozen=True)
class _Served:
    """One predictor call's rows, as the request path had them (no copies)."""

    timestamp: datetime
    records: Mapping[str, Sequence[Any]]
    features: Mapping[str, npt.NDArray[Any]]
    prediction: Prediction
    requests: Sequence[tuple[str, int]]  # (request id, rows) in row order

    @property
    def rows(self) -> int:
        return len(self.prediction.probabilities)


class CaptureStore:
    """A bounded queue of served rows and the thread that writes them as Parquet.

    Parameters
    ----------
    uri : str
        Directory or URI (``s3://bucket/capture``) the partitions go under.
    queue_rows : int
        Most rows waiting in memory; rows offered beyond it are dropped and counted.
    flush_seconds : float
        Longest a row waits before it is written.
    batch_rows : int
        Rows that trigger a write before ``flush_seconds`` have passed.
    """

    def __init__(self, uri: str, *, queue_rows: int, flush_seconds: float, batch_rows: int) -> None:
        self.uri = uri
        self.queue_rows = queue_rows
        self.flush_seconds = flush_seconds
        self.batch_rows = batch_rows
        # No request is made here: a store that is down fails (and drops) the writes.
        self._fs, self._root = filesystem(uri)
        self._queue: deque[_Served] = deque()
        self._queued = 0
        self._closed = False
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._owner_pid = 0
        self._last_warning = 0.0
        # Each reason's count is exported at 0 from the start: rate() and increase() see a
        # series' first value as its start, so a pod's first drops would otherwise not count.
        for reason in ("queue_full", "write_error"):
            DROPPED_ROWS.labels(reason)
        atexit.register(self.close)

    def __getstate__(self) -> dict[str, Any]:
        """Settings only: a server worker started by pickling the model gets its own
        queue, lock and writer (none of which pickle)."""
        return {
            "uri": self.uri,
            "queue_rows": self.queue_rows,
            "flush_seconds": self.flush_seconds,
            "batch_rows": self.batch_rows,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["uri"],
            queue_rows=state["queue_rows"],
            flush_seconds=state["flush_seconds"],
            batch_rows=state["batch_rows"],
        )
        # A worker process (KServe's --workers > 1) is ended by SIGTERM, which uvicorn
        # re-raises after its graceful shutdown, and dies of it without running atexit:
        # write the queue first, then die as the signal's previous handler says.
        if threading.current_thread() is threading.main_thread():
            _close_before(signal.SIGTERM, self.close)

    def offer(
        self,
        records: Mapping[str, Sequence[Any]],
        features: Mapping[str, npt.NDArray[Any]],
        prediction: Prediction,
        requests: Sequence[tuple[str, int]],
    ) -> None:
        """Queue one predictor call's rows; never blocks on storage, never raises."""
        try:
            served = _Served(datetime.now(UTC), records, features, prediction, requests)
            with self._wake:
                if self._closed:
                    # Served while shutting down: written at once, not lost.
                    self._write([served])
                    return
                if self._queued + served.rows > self.queue_rows:
                    self._drop(served.rows, "queue_full")
                    return
                self._ensure_writer()
                self._queue.append(served)
                self._queued += served.rows
                if self._queued >= self.batch_rows:
                    self._wake.notify()
        except Exception:  # capture must never fail a request
            log.exception("capture failed; the request is served regardless")

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the writer. Safe to call twice."""
        with self._wake:
            if self._closed:
                return
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None and thread.is_alive() and self._owner_pid == os.getpid():
            thread.join(timeout)
        # A writer that never started (or was lost to a fork) leaves rows behind.
        with self._wake:
            leftover = list(self._queue)
            self._queue.clear()
            self._queued = 0
        if leftover:
            self._write(leftover)

    def _ensure_writer(self) -> None:
        if self._thread is not None and self._owner_pid == os.getpid():
            return
        self._owner_pid = os.getpid()  # a forked worker starts its own writer
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(
                    lambda: self._closed or self._queued >= self.batch_rows,
                    timeout=self.flush_seconds,
                )
                batch = list(self._queue)
                QUEUED_ROWS.set(self._queued)  # what waited: the gauge is sampled per write
                self._queue.clear()
                self._queued = 0
                closing = self._closed
            if batch:
                self._write(batch)
            if closing:
                return

    def _write(self, served: list[_Served]) -> None:
        by_hour: dict[str, list[_Served]] = {}
        for item in served:
            by_hour.setdefault(item.timestamp.strftime("date=%Y-%m-%d/hour=%H"), []).append(item)
        for partition, items in by_hour.items():
            rows = sum(i.rows for i in items)
            try:
                self._write_file(partition, _table(items))
                CAPTURED_ROWS.inc(rows)
            except Exception as exc:  # any storage failure drops, never raises
                self._drop(rows, "write_error", exc)

    def _write_file(self, partition: str, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        directory = f"{self._root.rstrip('/')}/{partition}"
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        temporary = f"{directory}/.{name}.parquet.tmp"
        self._fs.create_dir(directory, recursive=True)
        pq.write_table(table, temporary, filesystem=self._fs, compression="zstd")
        self._fs.move(temporary, f"{directory}/{name}.parquet")

    def _drop(self, rows: int, reason: str, exc: BaseException | None = None) -> None:
        DROPPED_ROWS.labels(reason).inc(rows)
        now = time.monotonic()
        if exc is not None or now - self._last_warning > _WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning("capture dropped %d row(s): %s%s", rows, reason, f" ({exc})" if exc else "")


def _close_before(signum: int, close: Callable[[], None]) -> None:
    """Run ``close`` when ``signum`` arrives, then hand the signal to its previous handler."""
    previous = signal.getsignal(signum)

    def handler(number: int, frame: FrameType | None) -> None:
        close()
        if callable(previous):
            previous(number, frame)
            return
        signal.signal(number, previous if previous is not None else signal.SIG_DFL)
        signal.raise_signal(number)

    signal.signal(signum, handler)


def _table(items: list[_Served]) -> pa.Table:
    """One Arrow table of the rows of ``items``, in :func:`capture_schema`."""
    import pyarrow as pa

    schema = capture_schema()
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    rows = [i.rows for i in items]
    columns["timestamp"] = pa.array(
        np.repeat([i.timestamp for i in items], rows), type=schema.field("timestamp").type
    )
    ids = [rid for i in items for rid, _ in i.requests]
    counts = [n for i in items for _, n in i.requests]
    columns["request_id"] = pa.array(np.repeat(ids, counts), pa.string())
    columns["row"] = pa.array(np.concatenate([np.arange(n) for n in counts]), pa.int32())
    for key in ("model_name", "model_version"):
        columns[key] = pa.array(
            np.repeat([getattr(i.prediction, key) for i in items], rows), pa.string()
        )
    columns["predicted_class"] = pa.array(
        [c for i in items for c in i.prediction.predicted_class], pa.string()
    )
    columns["classes"] = pa.array(
        np.repeat([",".join(i.prediction.classes) for i in items], rows), pa.string()
    )
    probabilities = np.concatenate([i.prediction.probabilities for i in items])
    columns["probabilities"] = pa.ListArray.from_arrays(
        pa.array(np.arange(0, probabilities.size + 1, probabilities.shape[1]), pa.int32()),
        pa.array(probabilities.ravel(), pa.float64()),
    )
    for name, kind in _raw_arrow_types().items():
        values = [v for i in items for v in i.records[name]]
        columns[f"raw_{name}"] = pa.array(values, kind)
    for feature in FEATURES:
        columns[feature.name] = pa.array(
            np.concatenate([np.asarray(i.features[feature.name]) for i in items]),
            _feature_arrow_types()[feature.datatype],
        )
    return pa.table(columns, schema=schema)
