"""Server-side micro-batching: concurrent requests share one model call.

A scikit-learn ``predict_proba`` on one row costs nearly what it costs on a
hundred (input checks dominate), so under concurrent load the predictor gathers
the rows that are waiting into one call and hands each request its slice.

Rows that arrive while the model runs form the next batch. A batch may also wait
up to ``max_wait_ms`` for company, but only as long as company is expected: when
the previous batch gathered several requests, it waits until as many have come
(or the time is up). A lone client therefore never waits, and concurrent clients,
whose requests reach the predictor staggered by the transformer, fill batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MicroBatcher", "PredictFn"]

PredictFn = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


@dataclass
class _Pending:
    matrix: npt.NDArray[np.float64]
    result: asyncio.Future[npt.NDArray[np.float64]]


class MicroBatcher:
    """Queue feature matrices and predict them in batches.

    Parameters
    ----------
    predict : callable
        Feature matrix ``(rows, features)`` to probabilities ``(rows, classes)``.
    max_batch_size : int
        Most rows in one model call; a request with at least this many rows is
        predicted on its own.
    max_wait_ms : float
        Longest a batch waits for the company the previous batch had; 0 waits
        only for what is already queued.
    """

    def __init__(self, predict: PredictFn, *, max_batch_size: int, max_wait_ms: float) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self._max_wait = max_wait_ms / 1000.0
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._carry: _Pending | None = None  # too big for the last batch: heads the next
        self._expected = 1  # requests the previous batch gathered

    async def predict(self, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Probabilities for ``matrix``, computed alone or in a batch with others."""
        if len(matrix) >= self.max_batch_size:
            return self._predict(matrix)
        if self._queue is None:
            # Made on first use, inside the serving event loop.
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        pending = _Pending(matrix, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        return await pending.result

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = await self._collect(self._queue)
            try:
                probabilities = self._predict(np.concatenate([p.matrix for p in batch]))
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for pending in batch:
                    if not pending.result.done():
                        pending.result.set_exception(exc)
                continue
            start = 0
            for pending in batch:
                end = start + len(pending.matrix)
                if not pending.result.done():  # the caller may have gone
                    pending.result.set_result(probabilities[start:end])
                start = end

    async def _collect(self, queue: asyncio.Queue[_Pending]) -> list[_Pending]:
        batch = [self._carry or await queue.get()]
        self._carry = None
        rows = len(batch[0].matrix)
        deadline = asyncio.get_running_loop().time() + self._max_wait
        while rows < self.max_batch_size:
            if queue.empty():
                if len(batch) >= self._expected:
                    break
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
            else:
                nxt = queue.get_nowait()
            if rows + len(nxt.matrix) > self.max_batch_size:
                self._carry = nxt
                break
            batch.append(nxt)
            rows += len(nxt.matrix)
        self._expected = len(batch)
        return batch
