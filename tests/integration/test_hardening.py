"""Crafted requests from issue 10, against the real servers: each is a clear 4xx (or a
quick 503 under overload), never a 500, and the servers stay healthy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from common.core.contract import FEATURES
from common.protocol.tensors import HEADER_LENGTH
from harness.servers import Server
from tests.integration.conftest import MODEL, READY, Registry
from tests.unit.records import VALID, record
from transformer.protocol import RAW_DATATYPES

V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"
JSON = {"content-type": "application/json"}


def columnar(records: list[dict[str, Any]], **datatypes: str) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": name,
                "datatype": datatypes.get(name, datatype),
                "shape": [len(records)],
                "data": [r[name] for r in records],
            }
            for name, datatype in RAW_DATATYPES.items()
        ]
    }


def features_body(shape: list[Any], data: list[Any]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": f.name, "datatype": f.datatype, "shape": shape, "data": data} for f in FEATURES
        ]
    }


def assert_client_error(response: httpx.Response, status: int, *named: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    for name in named:
        assert name in error, error


def test_a_long_request_id_is_refused_not_echoed(transformer: Server, predictor: Server) -> None:
    long_id = "x" * 8000
    for server, path, body in ((transformer, V1, {"instances": [VALID]}), (predictor, V2, None)):
        content = orjson.dumps(body or features_body([1], [1]))
        response = httpx.post(
            f"{server.url}{path}", content=content, headers={**JSON, "x-request-id": long_id}
        )
        assert_client_error(response, 400, "request id", "expected 1 to 128")
        assert long_id not in response.text


def test_a_request_id_with_odd_characters_is_refused(transformer: Server) -> None:
    response = httpx.post(
        f"{transformer.url}{V1}", json={"instances": [VALID]}, headers={"x-request-id": "a b"}
    )
    assert_client_error(response, 400, "request id is invalid: its character 2 is not allowed")


def test_the_transformer_honours_a_v2_body_id(transformer: Server) -> None:
    body = {**columnar([VALID]), "id": "body-id-1"}
    response = httpx.post(f"{transformer.url}{V2}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "body-id-1"
    assert response.headers["x-request-id"] == "body-id-1"


@pytest.mark.parametrize(
    ("shape", "data", "status", "named"),
    [
        ([2], [1], 400, "does not match its shape [2]: 1 element(s) for the 2"),
        ([1], [1, 2], 400, "does not match its shape [1]: 2 element(s) for the 1"),
        ([1000000000000], [1], 413, "has 1000000000000 rows: at most 10000 per request"),
        ([1, 10**12], [1], 400, "does not match its shape [1, 1000000000000]"),
        ([-5], [1], 400, "has shape [-5]: expected a list of integers >= 0"),
    ],
)
def test_a_v2_shape_that_disagrees_with_its_data_is_refused_before_allocating(
    predictor: Server,
    transformer: Server,
    shape: list[int],
    data: list[Any],
    status: int,
    named: str,
) -> None:
    response = httpx.post(f"{predictor.url}{V2}", json=features_body(shape, data))
    assert_client_error(response, status, named)
    raw = columnar([VALID])
    raw["inputs"][0]["shape"] = shape
    raw["inputs"][0]["data"] = [VALID["date"]] * len(data)
    assert_client_error(httpx.post(f"{transformer.url}{V2}", json=raw), status, named)


def binary_body(inputs: list[dict[str, Any]], tail: bytes) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps({"inputs": inputs})
    return header + tail, {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(header)),
    }


@pytest.mark.parametrize(
    ("spec", "tail", "named"),
    [
        ({"shape": ["a"], "datatype": "FP64"}, b"\0" * 8, 'has shape ["a"]'),
        ({"shape": [-1], "datatype": "FP64"}, b"\0" * 8, "has shape [-1]"),
        ({"shape": [1, 10**12], "datatype": "FP64"}, b"\0" * 8, "8 bytes are not 1000000000000"),
        ({"shape": [1], "datatype": "BYTES"}, b"\2\0\0\0\xff\xfe", "expected UTF-8 text"),
    ],
)
def test_a_crafted_binary_tensor_is_a_400(
    transformer: Server, spec: dict[str, Any], tail: bytes, named: str
) -> None:
    name = "store_id" if spec["datatype"] == "BYTES" else "unit_price"
    inputs = [i for i in columnar([VALID])["inputs"] if i["name"] != name]
    inputs.append({"name": name, **spec, "parameters": {"binary_data_size": len(tail)}})
    body, headers = binary_body(inputs, tail)
    assert_client_error(
        httpx.post(f"{transformer.url}{V2}", content=body, headers=headers), 400, named
    )


def test_bool_inputs_take_0_and_1(transformer: Server) -> None:
    body = columnar([VALID, record(on_promotion=False)])
    body["inputs"][6]["data"] = [1, 0]
    response = httpx.post(f"{transformer.url}{V2}", json=body)
    assert response.status_code == 200, response.text
    body["inputs"][6]["data"] = [1, 2]
    assert_client_error(httpx.post(f"{transformer.url}{V2}", json=body), 400, "on_promotion[1]=2")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_named_alike_in_v1_and_v2(
    transformer: Server, constant: bytes
) -> None:
    v1 = orjson.dumps({"instances": [record(unit_price=777.0)]}).replace(b"777.0", constant)
    v2 = orjson.dumps(columnar([record(unit_price=777.0)])).replace(b"777.0", constant)
    reason = f"={constant.decode()} is invalid: expected a finite number"
    assert_client_error(
        httpx.post(f"{transformer.url}{V1}", content=v1, headers=JSON),
        400,
        "instances[0].unit_price" + reason,
    )
    assert_client_error(
        httpx.post(f"{transformer.url}{V2}", content=v2, headers=JSON),
        400,
        "unit_price[0]" + reason,
    )


def test_the_transformers_v2_metadata_lists_raw_inputs_outputs_and_version(
    transformer: Server, registry: Registry
) -> None:
    metadata = httpx.get(f"{transformer.url}/v2/models/{MODEL}").json()
    assert metadata["inputs"] == [
        {"name": name, "datatype": datatype, "shape": [-1]}
        for name, datatype in RAW_DATATYPES.items()
    ]
    assert [o["name"] for o in metadata["outputs"]] == ["predicted_class", "probabilities"]
    assert metadata["outputs"][1]["parameters"]["classes"]
    assert metadata["versions"] == [registry.version]


def test_overload_is_a_quick_503_with_retry_after_and_the_rest_are_served(
    predictor: Server, start_transformer: Callable[..., Server]
) -> None:
    transformer = start_transformer(
        f"127.0.0.1:{predictor.port}",
        "--predictor_concurrency",
        "1",
        "--max_batch_size",
        "1",
        "--max_queued_requests",
        "2",
    )

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=transformer.url, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(client.post(V1, json={"instances": [VALID]}) for _ in range(30))
                )
            )

    responses = asyncio.run(scenario())
    statuses = sorted({r.status_code for r in responses})
    assert statuses == [200, 503], statuses
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1"
            assert "overloaded" in response.json()["error"]
    assert httpx.get(f"{transformer.url}{READY}").status_code == 200
