"""Micro-batching: concurrent requests share one call of something costly.

The predictor batches rows into one model call (a call on one row costs nearly
what it costs on a hundred); the transformer batches
requests into one predictor call (each HTTP exchange costs both sides more than
the rows it carries).

Requests that arrive while every call slot is busy form the next batch. A batch
may also wait up to ``max_wait_ms`` for company, but only as long as company is
expected: when the previous batch gathered several requests, it waits until as
many have come (or the time is up). A lone client therefore never waits.

What one caller does must not harm another:

- the queue is bounded (``max_queue``): beyond it :class:`common.core.errors.Overloaded`
  (503 with ``Retry-After``) answers at once, rather than a wait without end;
- a caller that has gone (its task cancelled) is dropped from the queue unserved;
- a batch that fails is retried item by item when ``retry_alone`` says the
  failure may be one item's fault, so that only that item's caller gets the error;
- whatever a batch raises, ``BaseException`` included, every caller of the batch
  gets an answer and the workers carry on (a dead worker is restarted);
- a batcher serves one event loop at a time: after that loop closes it rebinds to
  the next; while it still runs, another loop is refused with a ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from common.core.errors import BatchFailed, Overloaded, ShuttingDown
from common.core.settings import MAX_QUEUED_REQUESTS

__all__ = ["MicroBatcher"]

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    rows: int
    key: Hashable
    result: asyncio.Future[Result]


def _no_key(item: object) -> None:
    return None


def _never(exc: BaseException) -> bool:
    return False


class MicroBatcher(Generic[Item, Result]):
    """Queue items and hand them to ``run`` in batches; each caller gets its own result.

    Parameters
    ----------
    run : callable
        A batch of items to their results, in the same order. It is awaited in
        the event loop; a synchronous body (a model call) holds the loop, which
        is what a single-threaded model server wants.
    rows : callable
        Rows in an item; batches are bounded in rows, not in items.
    max_batch_size : int
        Most rows in one batch; an item with at least this many rows runs alone,
        at once.
    max_wait_ms : float
        Longest a batch waits for the company the previous batch had; 0 takes
        only what is already queued.
    concurrency : int
        Batches run at once. Items wait only while every slot is busy.
    key : callable, optional
        Only items of equal keys share a batch (e.g. callers' credentials).
    max_queue : int, default=MAX_QUEUED_REQUESTS
        Most items waiting for a slot (items too large to share a batch count
        while they run); one more raises :class:`common.core.errors.Overloaded`.
    retry_alone : callable, optional
        Given what a batch of several items raised, whether to run each item
        alone so that the failure reaches only the item that caused it. Never
        by default.
    """

    def __init__(
        self,
        run: Callable[[list[Item]], Awaitable[Sequence[Result]]],
        *,
        rows: Callable[[Item], int],
        max_batch_size: int,
        max_wait_ms: float,
        concurrency: int = 1,
        key: Callable[[Item], Hashable] = _no_key,
        max_queue: int = MAX_QUEUED_REQUESTS,
        retry_alone: Callable[[BaseException], bool] = _never,
    ) -> None:
        self._run = run
        self._rows = rows
        self._key = key
        self._retry_alone = retry_alone
        self.max_batch_size = max_batch_size
        self.concurrency = concurrency
        self.max_queue = max_queue
        self._max_wait = max_wait_ms / 1000.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bind(None)

    def _bind(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Start afresh in ``loop``: a queue, an event and workers belong to one loop."""
        self._loop = loop
        self._queue: deque[_Pending[Item, Result]] = deque()
        self._arrived = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._alone = 0  # items running alone, outside the queue
        self._expected = 1  # requests the previous batch gathered

    def _loop_for_submit(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            old = self._loop
            if old is not None and not old.is_closed() and old.is_running():
                raise RuntimeError(
                    "this MicroBatcher serves another event loop that is still running; "
                    "make one batcher per event loop"
                )
            self._bind(loop)  # the old loop is gone, and whatever waited in it
        return loop

    async def submit(self, item: Item) -> Result:
        """The result for ``item``, computed alone or in a batch with others.

        Raises
        ------
        common.core.errors.Overloaded
            When ``max_queue`` items are already waiting.
        """
        loop = self._loop_for_submit()
        if len(self._queue) + self._alone >= self.max_queue:
            self._drop_gone()
            if len(self._queue) + self._alone >= self.max_queue:
                raise Overloaded(
                    f"the server is overloaded: {self.max_queue} requests are waiting; "
                    "retry shortly"
                )
        rows = self._rows(item)
        if rows >= self.max_batch_size:
            self._alone += 1
            try:
                return await self._run_one(item)
            finally:
                self._alone -= 1
        self._start_workers(loop)
        result: asyncio.Future[Result] = loop.create_future()
        self._queue.append(_Pending(item, rows, self._key(item), result))
        self._arrived.set()
        return await result

    def _start_workers(self, loop: asyncio.AbstractEventLoop) -> None:
        # Started on first use, inside the serving event loop; one that died is replaced.
        self._workers = [w for w in self._workers if not w.done()]
        while len(self._workers) < self.concurrency:
            self._workers.append(loop.create_task(self._work()))

    def _drop_gone(self) -> None:
        """Forget queued items whose callers have gone."""
        if any(p.result.done() for p in self._queue):
            self._queue = deque(p for p in self._queue if not p.result.done())

    async def _run_one(self, item: Item) -> Result:
        results = await self._run([item])
        if len(results) != 1:
            raise RuntimeError(f"{len(results)} result(s) for 1 item")
        return results[0]

    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            await self._answer(batch)

    async def _answer(self, batch: list[_Pending[Item, Result]]) -> None:
        """Run ``batch`` and resolve every caller in it, whatever happens."""
        try:
            results = await self._run([p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} result(s) for {len(batch)} item(s)")
        except BaseException as exc:
            if self._stopping(exc):
                _fail(batch, ShuttingDown("the server is shutting down"))
                raise
            if len(batch) > 1 and isinstance(exc, Exception) and self._retry_alone(exc):
                await asyncio.gather(*(self._answer_alone(p) for p in batch))
                return
            _fail(batch, _as_exception(exc))
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise  # the process is stopping; a later submit restarts the worker
            return
        for pending, result in zip(batch, results, strict=True):
            if not pending.result.done():  # the caller may have gone
                pending.result.set_result(result)

    async def _answer_alone(self, pending: _Pending[Item, Result]) -> None:
        try:
            result = await self._run_one(pending.item)
        except BaseException as exc:
            if self._stopping(exc):
                _fail([pending], ShuttingDown("the server is shutting down"))
                raise
            _fail([pending], _as_exception(exc))
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return
        if not pending.result.done():
            pending.result.set_result(result)

    @staticmethod
    def _stopping(exc: BaseException) -> bool:
        """Whether ``exc`` is this worker being cancelled (not a cancellation inside run)."""
        task = asyncio.current_task()
        return isinstance(exc, asyncio.CancelledError) and bool(task and task.cancelling())

    async def _collect(self) -> list[_Pending[Item, Result]]:
        while True:
            while not self._queue:
                await self._arrival(timeout=None)
            head = self._queue.popleft()
            if not head.result.done():  # else its caller has gone: skip it
                break
        batch, rows = [head], head.rows
        deadline = asyncio.get_running_loop().time() + self._max_wait
        while rows < self.max_batch_size:
            if not self._queue:
                left = deadline - asyncio.get_running_loop().time()
                if len(batch) >= self._expected or left <= 0 or not await self._arrival(left):
                    break
                continue
            nxt = self._queue[0]  # one that does not fit stays first in line
            if nxt.result.done():
                self._queue.popleft()
                continue
            if rows + nxt.rows > self.max_batch_size or nxt.key != head.key:
                break
            batch.append(self._queue.popleft())
            rows += nxt.rows
        self._expected = len(batch)
        return batch

    async def _arrival(self, timeout: float | None) -> bool:
        """Wait for a new item; False when ``timeout`` seconds pass first."""
        self._arrived.clear()
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout)
        except TimeoutError:
            return False
        return True


def _as_exception(exc: BaseException) -> Exception:
    """What a caller is given for ``exc``: a ``BaseException`` would end its handler too."""
    if isinstance(exc, Exception):
        return exc
    failed = BatchFailed(f"the batch failed: {type(exc).__name__}")
    failed.__cause__ = exc
    return failed


def _fail(batch: Sequence[_Pending[Item, Result]], exc: Exception) -> None:
    for pending in batch:
        if not pending.result.done():
            pending.result.set_exception(exc)
