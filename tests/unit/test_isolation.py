"""One request's values must never fail another's (issue 10, isolation).

Every number has finite bounds and every request is validated before it may share a
predictor call; the call's features are checked finite before they are sent, and a
shared call that fails all the same is retried request by request, so that only the
guilty request gets the error.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from kserve import InferInput, InferRequest

from common.core.errors import ClientError
from common.protocol.bodies import json_body
from tests.unit.predictors import transformer_calling
from tests.unit.records import VALID, record
from transformer import protocol
from transformer.errors import InvalidRecord
from transformer.model import PredictorCall
from transformer.schema import MAX_UNIT_PRICE, validate_records

PRICE = f"expected a number greater than 0 and at most {MAX_UNIT_PRICE}"


@pytest.mark.parametrize("price", [1e303, 1.0000001e6, 10**400, MAX_UNIT_PRICE + 1])
def test_a_unit_price_beyond_its_bound_is_this_records_400(price: float) -> None:
    with pytest.raises(
        InvalidRecord,
        match=rf"instances\[1\]\.unit_price=\S+( \(\d+ characters\))? is invalid: {PRICE}",
    ):
        protocol.records_from_v1({"instances": [VALID, record(unit_price=price)]})


def test_the_highest_unit_price_gives_finite_features() -> None:
    columns = validate_records([record(unit_price=MAX_UNIT_PRICE, discount_pct=0)])
    features = protocol.checked_features(columns, where="instances")
    assert features["effective_price"].tolist() == [MAX_UNIT_PRICE]


def test_non_finite_features_are_named_by_the_records_row_and_fields() -> None:
    # Not reachable through validation (the bounds forbid it): the last guard.
    columns = validate_records([VALID, VALID])
    columns["unit_price"] = [3.5, 1e308]
    columns["discount_pct"] = [0.1, -1.0]
    with pytest.raises(
        InvalidRecord,
        match=r"instances\[1\] is invalid: unit_price=1e\+308, discount_pct=-1\.0 give a "
        "non-finite effective_price",
    ):
        protocol.checked_features(columns, where="instances")


def test_v2_json_integer_beyond_a_double_is_a_400_not_an_overflow() -> None:
    # pydantic reads V2 JSON's huge integers as Python ints; they used to reach NumPy.
    huge = int("1" + "0" * 400)
    request = InferRequest(
        model_name="m",
        infer_inputs=[
            InferInput(name, [1], datatype, data=[huge if name == "unit_price" else VALID[name]])
            for name, datatype in protocol.RAW_DATATYPES.items()
        ],
    )
    with pytest.raises(
        InvalidRecord, match=rf"^unit_price\[0\]=10+\.\.\. \(401 characters\) is invalid: {PRICE}"
    ):
        protocol.records_from_v2(request)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_v1_nan_and_infinity_are_named_as_v2_names_them(constant: str) -> None:
    body = orjson.dumps({"instances": [VALID, record(discount_pct=0.5)]}).replace(
        b"0.5", constant.encode()
    )
    with pytest.raises(
        InvalidRecord,
        match=rf"instances\[1\]\.discount_pct={constant} is invalid: expected a finite",
    ):
        protocol.records_from_v1(body)


def test_a_body_that_is_not_json_is_still_a_400() -> None:
    with pytest.raises(ClientError, match="not valid JSON"):
        json_body(b'{"instances": [NaN')
    with pytest.raises(ClientError, match="not valid JSON"):
        json_body(b"[1" + b"0" * 5000 + b"]")  # beyond the standard library's 4300 digits


# A gathered call that fails all the same is retried request by request.

POISON = 777.0  # the fake predictor refuses any call with this price among other rows


def fake_predictor() -> web.Application:
    async def infer(request: web.Request) -> web.Response:
        body = await request.json()
        inputs = {i["name"]: i["data"] for i in body["inputs"]}
        prices = inputs["unit_price"]
        if POISON in prices:
            row = prices.index(POISON)
            return web.json_response({"error": f"inputs[{row}].unit_price is invalid"}, status=400)
        rows = len(prices)
        probabilities = np.tile([0.2, 0.3, 0.5], rows).tolist()
        return web.json_response(
            {
                "model_name": "m",
                "model_version": "3",
                "outputs": [
                    {
                        "name": "probabilities",
                        "datatype": "FP64",
                        "shape": [rows, 3],
                        "parameters": {"classes": "high,low,medium"},
                        "data": probabilities,
                    }
                ],
            }
        )

    app = web.Application()
    app.router.add_post("/v2/models/m/infer", infer)
    return app


def test_a_failed_gathered_call_is_retried_alone_and_fails_only_the_guilty_request() -> None:
    async def scenario() -> list[Any]:
        async with transformer_calling(fake_predictor()) as transformer:
            calls = []
            for i in range(12):
                price = POISON if i == 5 else 3.0 + i
                calls.append(
                    await transformer.preprocess(
                        {"instances": [record(unit_price=price)]}, {"x-request-id": f"r{i}"}
                    )
                )
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(transformer.predict(c) for c in calls), return_exceptions=True),
                timeout=10,
            )
        return [calls, outcomes]

    calls, outcomes = asyncio.run(scenario())
    assert isinstance(calls[0], PredictorCall)
    for i, outcome in enumerate(outcomes):
        if i == 5:
            assert isinstance(outcome, ClientError) and outcome.status_code == 400
            assert "inputs[0].unit_price" in str(outcome)  # its own row, not a neighbour's
        else:
            assert not isinstance(outcome, BaseException), outcome
            assert outcome.call.request_id == f"r{i}"


def test_a_non_finite_feature_in_a_gathered_call_fails_only_its_own_request() -> None:
    # Not reachable through validation (the bounds forbid it): records built past it.
    poisoned = validate_records([VALID])
    poisoned["unit_price"], poisoned["discount_pct"] = [1e308], [-1.0]
    sent: list[list[float]] = []

    async def scenario() -> list[Any]:
        app = fake_predictor()

        @web.middleware
        async def record_prices(request: web.Request, handler: Handler) -> web.StreamResponse:
            body = await request.json()
            sent.append(next(i["data"] for i in body["inputs"] if i["name"] == "unit_price"))
            return await handler(request)

        app.middlewares.append(record_prices)
        async with transformer_calling(app) as transformer:
            calls = [
                PredictorCall("v1", f"r{i}", validate_records([VALID]), {}, "instances")
                for i in range(6)
            ]
            calls[3] = PredictorCall("v1", "r3", poisoned, {}, "instances")
            return await asyncio.wait_for(
                asyncio.gather(*(transformer.predict(c) for c in calls), return_exceptions=True),
                timeout=10,
            )

    outcomes = asyncio.run(scenario())
    for i, outcome in enumerate(outcomes):
        if i == 3:
            assert isinstance(outcome, InvalidRecord)
            assert "instances[0] is invalid: unit_price=1e+308" in str(outcome)
        else:
            assert not isinstance(outcome, BaseException), outcome
            assert outcome.call.request_id == f"r{i}"
    assert sent and all(1e308 not in prices for prices in sent)  # never sent on
    assert sum(len(prices) for prices in sent) == 5  # each valid row sent once
