"""Micro-batching: concurrent requests share one call of something costly.

The predictor batches rows into one model call (a call on one row costs nearly
what it costs on a hundred); the transformer batches
requests into one predictor call (each HTTP exchange costs both sides more than
the rows it carries).

Requests that arrive while every call slot is busy form the next batch. A batch
may also wait up to ``max_wait_ms`` for company, but only as long as company is
expected: when the previous batch gathered several requests, it waits until as
many have come (or the time is up). A lone client therefore never waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

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
    ) -> None:
        self._run = run
        self._rows = rows
        self._key = key
        self.max_batch_size = max_batch_size
        self.concurrency = concurrency
        self._max_wait = max_wait_ms / 1000.0
        self._queue: deque[_Pending[Item, Result]] = deque()
        self._arrived = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._expected = 1  # requests the previous batch gathered

    async def submit(self, item: Item) -> Result:
        """The result for ``item``, computed alone or in a batch with others."""
        rows = self._rows(item)
        if rows >= self.max_batch_size:
            return (await self._run([item]))[0]
        loop = asyncio.get_running_loop()
        if not self._workers:
            # Started on first use, inside the serving event loop.
            self._workers = [loop.create_task(self._work()) for _ in range(self.concurrency)]
        result: asyncio.Future[Result] = loop.create_future()
        pending = _Pending(item, rows, self._key(item), result)
        self._queue.append(pending)
        self._arrived.set()
        return await result

    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            try:
                results = await self._run([p.item for p in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} result(s) for {len(batch)} item(s)")
            except Exception as exc:  # noqa: BLE001 - every waiting caller gets the error
                for pending in batch:
                    if not pending.result.done():
                        pending.result.set_exception(exc)
                continue
            for pending, result in zip(batch, results, strict=True):
                if not pending.result.done():  # the caller may have gone
                    pending.result.set_result(result)

    async def _collect(self) -> list[_Pending[Item, Result]]:
        while not self._queue:
            await self._arrival(timeout=None)
        head = self._queue.popleft()
        batch, rows = [head], head.rows
        deadline = asyncio.get_running_loop().time() + self._max_wait
        while rows < self.max_batch_size:
            if not self._queue:
                left = deadline - asyncio.get_running_loop().time()
                if len(batch) >= self._expected or left <= 0 or not await self._arrival(left):
                    break
                continue
            nxt = self._queue[0]  # one that does not fit stays first in line
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
