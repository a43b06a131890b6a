from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
import pytest

from predictor.batching import MicroBatcher


class CountingModel:
    """Doubles its input and remembers the size of every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        self.calls.append(len(matrix))
        return matrix * 2


def rows(*values: float) -> npt.NDArray[np.float64]:
    return np.array([[v] for v in values])


def test_concurrent_requests_share_one_model_call_and_get_their_own_rows() -> None:
    model = CountingModel()
    batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=0)

    async def scenario() -> list[npt.NDArray[np.float64]]:
        return list(await asyncio.gather(*(batcher.predict(rows(i, i + 0.5)) for i in range(8))))

    results = asyncio.run(scenario())
    assert model.calls == [16]
    for i, result in enumerate(results):
        assert result.tolist() == [[2 * i], [2 * i + 1]]


def test_a_lone_request_does_not_wait() -> None:
    model = CountingModel()
    batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=0)
    assert asyncio.run(batcher.predict(rows(3))).tolist() == [[6]]
    assert model.calls == [1]


def test_batches_never_exceed_the_maximum_size() -> None:
    model = CountingModel()
    batcher = MicroBatcher(model, max_batch_size=4, max_wait_ms=0)

    async def scenario() -> list[npt.NDArray[np.float64]]:
        return list(await asyncio.gather(*(batcher.predict(rows(i, i)) for i in range(5))))

    results = asyncio.run(scenario())
    assert max(model.calls) <= 4
    assert sum(model.calls) == 10
    assert [r[:, 0].tolist() for r in results] == [[2 * i, 2 * i] for i in range(5)]


def test_a_request_as_large_as_a_batch_is_predicted_on_its_own() -> None:
    model = CountingModel()
    batcher = MicroBatcher(model, max_batch_size=4, max_wait_ms=0)
    assert asyncio.run(batcher.predict(rows(1, 2, 3, 4, 5))).shape == (5, 1)
    assert model.calls == [5]


def test_after_a_shared_batch_the_next_waits_for_as_much_company() -> None:
    model = CountingModel()
    batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=10_000)

    async def late(value: float) -> npt.NDArray[np.float64]:
        await asyncio.sleep(0.02)
        return await batcher.predict(rows(value))

    async def scenario() -> None:
        await asyncio.gather(batcher.predict(rows(1)), batcher.predict(rows(2)))
        # Two requests came together; the next batch waits for a second one.
        await asyncio.wait_for(asyncio.gather(batcher.predict(rows(3)), late(4)), timeout=5)

    asyncio.run(scenario())
    assert model.calls == [2, 2]


def test_a_lone_client_never_waits_for_company() -> None:
    model = CountingModel()
    # Were a lone request made to wait, it would wait 10 s and miss the 5 s bound.
    batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=10_000)

    async def scenario() -> list[list[list[float]]]:
        return [(await batcher.predict(rows(i))).tolist() for i in range(3)]

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=5)) == [[[0]], [[2]], [[4]]]
    assert model.calls == [1, 1, 1]


def test_when_company_stops_coming_the_batch_runs_at_the_deadline() -> None:
    model = CountingModel()
    batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=50)

    async def scenario() -> None:
        await asyncio.gather(batcher.predict(rows(1)), batcher.predict(rows(2)))
        await batcher.predict(rows(3))  # expected company never comes
        await batcher.predict(rows(4))  # and is no longer expected

    asyncio.run(asyncio.wait_for(scenario(), timeout=5))
    assert model.calls == [2, 1, 1]


def test_a_failing_model_call_fails_every_request_in_the_batch() -> None:
    def broken(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        raise ValueError("model exploded")

    batcher = MicroBatcher(broken, max_batch_size=64, max_wait_ms=0)

    async def scenario() -> list[object]:
        return list(
            await asyncio.gather(
                *(batcher.predict(rows(i)) for i in range(3)), return_exceptions=True
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

    batcher = MicroBatcher(flaky, max_batch_size=64, max_wait_ms=0)

    async def scenario() -> npt.NDArray[np.float64]:
        with pytest.raises(ValueError):
            await batcher.predict(rows(1))
        return await batcher.predict(rows(2))

    assert asyncio.run(scenario()).tolist() == [[2]]
