from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from common.core.errors import BatchFailed, Overloaded
from common.serving.batching import MicroBatcher

Matrix = npt.NDArray[np.float64]
Model = Callable[[Matrix], Matrix]


class CountingModel:
    """Doubles its input and remembers the size of every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, matrix: Matrix) -> Matrix:
        self.calls.append(len(matrix))
        return matrix * 2


def batcher_of(
    model: Model, *, max_batch_size: int, max_wait_ms: float, **options: Any
) -> MicroBatcher[Matrix, Matrix]:
    """A batcher calling ``model`` once per batch, as the predictor does."""

    async def run(matrices: list[Matrix]) -> list[Matrix]:
        result = model(np.concatenate(matrices))
        return np.split(result, np.cumsum([len(m) for m in matrices[:-1]]))

    return MicroBatcher(
        run, rows=len, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, **options
    )


def rows(*values: float) -> npt.NDArray[np.float64]:
    return np.array([[v] for v in values])


def test_concurrent_requests_share_one_model_call_and_get_their_own_rows() -> None:
    model = CountingModel()
    batcher = batcher_of(model, max_batch_size=64, max_wait_ms=0)

    async def scenario() -> list[npt.NDArray[np.float64]]:
        return list(await asyncio.gather(*(batcher.submit(rows(i, i + 0.5)) for i in range(8))))

    results = asyncio.run(scenario())
    assert model.calls == [16]
    for i, result in enumerate(results):
        assert result.tolist() == [[2 * i], [2 * i + 1]]


def test_a_lone_request_does_not_wait() -> None:
    model = CountingModel()
    batcher = batcher_of(model, max_batch_size=64, max_wait_ms=0)
    assert asyncio.run(batcher.submit(rows(3))).tolist() == [[6]]
    assert model.calls == [1]


def test_batches_never_exceed_the_maximum_size() -> None:
    model = CountingModel()
    batcher = batcher_of(model, max_batch_size=4, max_wait_ms=0)

    async def scenario() -> list[npt.NDArray[np.float64]]:
        return list(await asyncio.gather(*(batcher.submit(rows(i, i)) for i in range(5))))

    results = asyncio.run(scenario())
    assert max(model.calls) <= 4
    assert sum(model.calls) == 10
    assert [r[:, 0].tolist() for r in results] == [[2 * i, 2 * i] for i in range(5)]


def test_a_request_as_large_as_a_batch_is_predicted_on_its_own() -> None:
    model = CountingModel()
    batcher = batcher_of(model, max_batch_size=4, max_wait_ms=0)
    assert asyncio.run(batcher.submit(rows(1, 2, 3, 4, 5))).shape == (5, 1)
    assert model.calls == [5]


def test_after_a_shared_batch_the_next_waits_for_as_much_company() -> None:
    model = CountingModel()
    batcher = batcher_of(model, max_batch_size=64, max_wait_ms=10_000)

    async def late(value: float) -> npt.NDArray[np.float64]:
        await asyncio.sleep(0.02)
        return await batcher.submit(rows(value))

    async def scenario() -> None:
        await asyncio.gather(batcher.submit(rows(1)), batcher.submit(rows(2)))
        # Two requests came together; the next batch waits for a second one.
        await asyncio.wait_for(asyncio.gather(batcher.submit(rows(3)), late(4)), timeout=5)

    asyncio.run(scenario())
    assert model.calls == [2, 2]


def test_a_lone_client_never_waits_for_company() -> None:
    model = CountingModel()
    # Were a lone request made to wait, it would wait 10 s and miss the 5 s bound.
    batcher = batcher_of(model, max_batch_size=64, max_wait_ms=10_000)

    async def scenario() -> list[list[list[float]]]:
        return [(await batcher.submit(rows(i))).tolist() for i in range(3)]

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=5)) == [[[0]], [[2]], [[4]]]
    assert model.calls == [1, 1, 1]


def test_when_company_stops_coming_the_batch_runs_at_the_deadline() -> None:
    model = CountingModel()
    batcher = batcher_of(model, max_batch_size=64, max_wait_ms=50)

    async def scenario() -> None:
        await asyncio.gather(batcher.submit(rows(1)), batcher.submit(rows(2)))
        await batcher.submit(rows(3))  # expected company never comes
        await batcher.submit(rows(4))  # and is no longer expected

    asyncio.run(asyncio.wait_for(scenario(), timeout=5))
    assert model.calls == [2, 1, 1]


def test_a_failing_model_call_fails_every_request_in_the_batch() -> None:
    def broken(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        raise ValueError("model exploded")

    batcher = batcher_of(broken, max_batch_size=64, max_wait_ms=0)

    async def scenario() -> list[object]:
        return list(
            await asyncio.gather(
                *(batcher.submit(rows(i)) for i in range(3)), return_exceptions=True
            )
        )

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, ValueError) for o in outcomes)


def test_the_batcher_keeps_working_after_a_failure() -> None:
    calls = {"n": 0}

    def flaky(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("first call fails")
        return matrix

    batcher = batcher_of(flaky, max_batch_size=64, max_wait_ms=0)

    async def scenario() -> npt.NDArray[np.float64]:
        with pytest.raises(ValueError):
            await batcher.submit(rows(1))
        return await batcher.submit(rows(2))

    assert asyncio.run(scenario()).tolist() == [[2]]


def test_items_of_different_keys_never_share_a_batch() -> None:
    seen: list[list[str]] = []

    async def run(items: list[str]) -> list[str]:
        seen.append(items)
        return [item.upper() for item in items]

    batcher = MicroBatcher(
        run, rows=lambda _: 1, max_batch_size=64, max_wait_ms=0, key=lambda item: item[0]
    )

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(batcher.submit(i) for i in ["a1", "a2", "b1", "a3"])))

    assert asyncio.run(scenario()) == ["A1", "A2", "B1", "A3"]
    assert all(len({item[0] for item in batch}) == 1 for batch in seen)
    assert sorted(item for batch in seen for item in batch) == ["a1", "a2", "a3", "b1"]


def test_items_queue_only_while_every_slot_is_busy() -> None:
    """Two slots: two items go at once, alone; those that come next share one batch."""
    sizes: list[int] = []

    async def scenario() -> list[int]:
        release = asyncio.Event()

        async def run(items: list[int]) -> list[int]:
            sizes.append(len(items))
            await release.wait()
            return items

        batcher = MicroBatcher(
            run, rows=lambda _: 1, max_batch_size=64, max_wait_ms=0, concurrency=2
        )
        calls = []
        for i in range(6):
            calls.append(asyncio.ensure_future(batcher.submit(i)))
            for _ in range(10):  # let a free slot take it
                await asyncio.sleep(0)
        release.set()
        return list(await asyncio.wait_for(asyncio.gather(*calls), timeout=5))

    assert asyncio.run(scenario()) == list(range(6))
    assert sizes == [1, 1, 4]


def test_a_run_returning_too_few_results_fails_its_batch_not_the_batcher() -> None:
    calls = {"n": 0}

    async def run(items: list[int]) -> list[int]:
        calls["n"] += 1
        return items[:-1] if calls["n"] == 1 else items

    batcher = MicroBatcher(run, rows=lambda _: 1, max_batch_size=64, max_wait_ms=0)

    async def scenario() -> int:
        with pytest.raises(RuntimeError, match="0 result"):
            await batcher.submit(1)
        return await asyncio.wait_for(batcher.submit(2), timeout=5)

    assert asyncio.run(scenario()) == 2


# Hardening (issue 10): one caller must not harm another, nor the batcher.


def test_a_full_queue_answers_overloaded_with_retry_after_at_once() -> None:
    async def scenario() -> tuple[list[object], int]:
        release = asyncio.Event()

        async def run(items: list[int]) -> list[int]:
            await release.wait()
            return items

        batcher = MicroBatcher(run, rows=lambda _: 1, max_batch_size=2, max_wait_ms=0, max_queue=3)
        waiting = []
        for group in ([0, 1], [2, 3, 4]):
            waiting += [asyncio.ensure_future(batcher.submit(i)) for i in group]
            for _ in range(10):  # the worker takes what is queued
                await asyncio.sleep(0)
        # One batch of two runs; three more wait: the queue is full.
        with pytest.raises(Overloaded) as refused:
            await asyncio.wait_for(batcher.submit(99), timeout=1)
        with pytest.raises(Overloaded):
            await asyncio.wait_for(batcher.submit(99), timeout=1)
        release.set()
        done = list(await asyncio.wait_for(asyncio.gather(*waiting), timeout=5))
        return [refused.value.headers, refused.value.status_code, *done], len(batcher._queue)

    outcome, left = asyncio.run(scenario())
    assert outcome[:2] == [{"retry-after": "1"}, 503]
    assert outcome[2:] == [0, 1, 2, 3, 4]
    assert left == 0


def test_a_caller_that_has_gone_is_not_computed() -> None:
    computed: list[int] = []

    async def scenario() -> int:
        release = asyncio.Event()

        async def run(items: list[int]) -> list[int]:
            computed.extend(items)
            await release.wait()
            return items

        batcher = MicroBatcher(run, rows=lambda _: 1, max_batch_size=64, max_wait_ms=0)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.01)  # 1 runs; 2 and 3 queue behind it
        gone = asyncio.ensure_future(batcher.submit(2))
        stays = asyncio.ensure_future(batcher.submit(3))
        await asyncio.sleep(0.01)
        gone.cancel()
        release.set()
        await first
        return await asyncio.wait_for(stays, timeout=5)

    assert asyncio.run(scenario()) == 3
    assert computed == [1, 3]


class Fatal(BaseException):
    """Not an Exception: what a careless ``except Exception`` lets through."""


def test_a_base_exception_answers_every_caller_and_the_batcher_lives_on() -> None:
    calls = {"n": 0}

    async def run(items: list[int]) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            await asyncio.sleep(0.01)  # let the others join the batch
            raise Fatal()
        return items

    batcher = MicroBatcher(run, rows=lambda _: 1, max_batch_size=64, max_wait_ms=0)

    async def scenario() -> tuple[list[object], int]:
        first = await asyncio.wait_for(
            asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True),
            timeout=5,
        )
        return list(first), await asyncio.wait_for(batcher.submit(7), timeout=5)

    first, later = asyncio.run(scenario())
    assert all(isinstance(o, BatchFailed) and "Fatal" in str(o) for o in first)
    assert later == 7


def test_a_batch_that_fails_is_retried_alone_so_only_the_guilty_item_fails() -> None:
    batches: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0.001)
        if -1 in items:
            raise ValueError("-1 is poison")
        return [i * 10 for i in items]

    batcher = MicroBatcher(
        run, rows=lambda _: 1, max_batch_size=64, max_wait_ms=0, retry_alone=lambda e: True
    )

    async def scenario() -> list[object]:
        items = [1, 2, -1, 3, 4]
        calls = [batcher.submit(i) for i in items]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    outcomes = asyncio.run(scenario())
    assert outcomes[:2] == [10, 20] and outcomes[3:] == [30, 40]
    assert isinstance(outcomes[2], ValueError)
    assert any(len(b) > 1 and -1 in b for b in batches)  # it was gathered, then isolated


def test_without_retry_alone_a_failed_batch_fails_all_its_callers() -> None:
    async def run(items: list[int]) -> list[int]:
        await asyncio.sleep(0.001)
        raise ValueError("no")

    batcher = MicroBatcher(run, rows=lambda _: 1, max_batch_size=64, max_wait_ms=0)

    async def scenario() -> list[object]:
        return list(
            await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
        )

    assert all(isinstance(o, ValueError) for o in asyncio.run(scenario()))


def test_a_batcher_serves_one_event_loop_after_another() -> None:
    model = CountingModel()
    batcher = batcher_of(model, max_batch_size=64, max_wait_ms=0)
    for value in (1, 2, 3):  # each asyncio.run is a new loop; the old one is closed
        assert asyncio.run(asyncio.wait_for(batcher.submit(rows(value)), 5)).tolist() == [
            [2 * value]
        ]


def test_a_batcher_refuses_a_second_loop_while_the_first_still_runs() -> None:
    model = CountingModel()
    batcher = batcher_of(model, max_batch_size=64, max_wait_ms=0)
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:
        first = asyncio.run_coroutine_threadsafe(batcher.submit(rows(1)), other)
        assert first.result(timeout=5).tolist() == [[2]]
        with pytest.raises(RuntimeError, match="another event loop"):
            asyncio.run(batcher.submit(rows(2)))
    finally:
        asyncio.run_coroutine_threadsafe(cancel_others(), other).result(timeout=5)
        other.call_soon_threadsafe(other.stop)
        thread.join(5)
        other.close()


async def cancel_others() -> None:
    """Cancel every other task of the running loop and wait for them to end."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
