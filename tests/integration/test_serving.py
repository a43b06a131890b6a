"""Requests through the real transformer and predictor, as clients send them."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from common.protocol.tensors import HEADER_LENGTH, binary_request, read_binary
from harness.servers import Server
from tests.integration.conftest import MODEL, Registry
from tests.unit.records import VALID, record
from transformer.features import compute_features
from transformer.protocol import RAW_DATATYPES, to_predictor_v2
from transformer.schema import RAW_FIELDS, validate_records

V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"


def columnar(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": name,
                "datatype": datatype,
                "shape": [len(records)],
                "data": [r[name] for r in records],
            }
            for name, datatype in RAW_DATATYPES.items()
        ]
    }


def test_v1_answers_each_row_with_class_probabilities_and_version(
    transformer: Server, registry: Registry
) -> None:
    records = [VALID, record(store_id="S001", on_promotion=False, discount_pct=0)]
    response = httpx.post(f"{transformer.url}{V1}", json={"instances": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == MODEL
    assert body["model_version"] == registry.version
    assert response.headers["x-model-version"] == registry.version
    assert len(body["predictions"]) == 2
    for prediction in body["predictions"]:
        probabilities = prediction["probabilities"]
        assert set(probabilities) == {"low", "medium", "high"}
        assert sum(probabilities.values()) == pytest.approx(1.0)
        assert prediction["predicted_class"] == max(probabilities, key=probabilities.get)


def test_v2_columnar_and_record_inputs_give_the_same_answer(
    transformer: Server, registry: Registry
) -> None:
    records = [VALID, record(category="frozen", date="2026-07-04", unit_price=6.5)]
    as_records = {
        "inputs": [
            {
                "name": "records",
                "datatype": "BYTES",
                "shape": [2],
                "data": [orjson.dumps(r).decode() for r in records],
            }
        ]
    }
    answers = [
        httpx.post(f"{transformer.url}{V2}", json=body) for body in (columnar(records), as_records)
    ]
    for response in answers:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == registry.version
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["predicted_class"]["shape"] == [2]
        assert outputs["probabilities"]["shape"] == [2, 3]
        assert sorted(outputs["probabilities"]["parameters"]["classes"].split(",")) == [
            "high",
            "low",
            "medium",
        ]
    assert answers[0].json()["outputs"] == answers[1].json()["outputs"]


def test_v1_and_v2_agree_on_the_same_records(transformer: Server) -> None:
    records = [VALID, record(item_id="I0001", is_holiday=True)]
    v1 = httpx.post(f"{transformer.url}{V1}", json={"instances": records}).json()
    v2 = httpx.post(f"{transformer.url}{V2}", json=columnar(records)).json()
    classes = {o["name"]: o for o in v2["outputs"]}["predicted_class"]["data"]
    assert [p["predicted_class"] for p in v1["predictions"]] == classes


def test_the_request_id_is_returned_and_reaches_the_predictor(
    transformer: Server, predictor: Server
) -> None:
    request_id = f"test-{time.time_ns()}"
    v2 = httpx.post(
        f"{transformer.url}{V2}", json=columnar([VALID]), headers={"x-request-id": request_id}
    )
    assert v2.headers["x-request-id"] == request_id
    assert v2.json()["id"] == request_id
    deadline = time.monotonic() + 5
    while request_id not in predictor.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert request_id in predictor.log()
    assert request_id in transformer.log()


def test_a_request_without_an_id_gets_a_new_one(transformer: Server) -> None:
    first = httpx.post(f"{transformer.url}{V1}", json={"instances": [VALID]})
    second = httpx.post(f"{transformer.url}{V1}", json={"instances": [VALID]})
    ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
    assert len(ids) == 2
    assert first.json()["request_id"] == first.headers["x-request-id"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            record(discount_pct=1.7),
            "instances[1].discount_pct=1.7 is invalid: expected a number between 0 and 1",
        ),
        (
            record(unit_price=-3),
            "instances[1].unit_price=-3 is invalid: expected a number greater than 0 "
            "and at most 1000000",
        ),
        (record(date="2026-02-30"), 'instances[1].date="2026-02-30" is invalid'),
        (record(category=...), "instances[1] is missing required field category"),
    ],
)
def test_a_bad_v1_record_is_a_400_naming_row_and_field(
    transformer: Server, bad: dict[str, Any], message: str
) -> None:
    response = httpx.post(f"{transformer.url}{V1}", json={"instances": [VALID, bad]})
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_a_bad_v2_record_is_a_400_naming_the_input_and_row(transformer: Server) -> None:
    response = httpx.post(f"{transformer.url}{V2}", json=columnar([VALID, record(store_id="12")]))
    assert response.status_code == 400
    assert 'store_id[1]="12" is invalid' in response.json()["error"]


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"instances": "x"}', b'{"instances": []}'],
)
def test_a_malformed_v1_body_is_a_400_not_a_500(transformer: Server, body: bytes) -> None:
    response = httpx.post(
        f"{transformer.url}{V1}", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]


def test_a_malformed_v2_body_is_a_4xx_not_a_500(transformer: Server) -> None:
    response = httpx.post(f"{transformer.url}{V2}", json={"inputs": [{"name": "date"}]})
    assert 400 <= response.status_code < 500, response.text


def test_the_predictor_reports_its_version_in_metadata_headers_and_metrics(
    predictor: Server, registry: Registry
) -> None:
    metadata = httpx.get(f"{predictor.url}/v2/models/{MODEL}").json()
    assert metadata["versions"] == [registry.version]
    assert [i["name"] for i in metadata["inputs"]][:3] == [
        "store_index",
        "item_index",
        "category_code",
    ]
    assert metadata["outputs"][1]["parameters"]["classes"]
    features = compute_features(validate_records([VALID, record(store_id="S002")]))
    content, headers = to_predictor_v2(features, "metrics", binary=True)
    assert httpx.post(f"{predictor.url}{V2}", content=content, headers=headers).is_success
    metrics = httpx.get(f"{predictor.url}/metrics").text
    assert (
        f'predictor_model_info{{model_name="{MODEL}",model_version="{registry.version}",'
        f'registered_model="{MODEL}",scorer="numpy"}} 1.0'
    ) in metrics
    # A two-row request is at least one model call of at least two rows.
    calls = re.search(rf'predictor_model_call_rows_count{{model_name="{MODEL}"}} (\S+)', metrics)
    rows = re.search(rf'predictor_model_call_rows_sum{{model_name="{MODEL}"}} (\S+)', metrics)
    assert calls and rows and float(calls[1]) >= 1 and float(rows[1]) >= 2


def test_the_predictor_names_a_missing_feature_with_a_400(predictor: Server) -> None:
    body = {"inputs": [{"name": "month", "datatype": "INT32", "shape": [1], "data": [3]}]}
    response = httpx.post(f"{predictor.url}{V2}", json=body)
    assert response.status_code == 400
    assert "missing input(s) store_index" in response.json()["error"]


def test_the_predictor_answers_binary_and_json_features_bit_for_bit_alike(
    predictor: Server,
) -> None:
    features = compute_features(validate_records([VALID, record(discount_pct=0.3333)]))
    content, headers = to_predictor_v2(features, "r1", binary=False)
    as_json = httpx.post(f"{predictor.url}{V2}", content=content, headers=headers)
    assert as_json.status_code == 200, as_json.text
    json_outputs = {o["name"]: o for o in as_json.json()["outputs"]}

    # Binary both ways: the transformer asks for the probabilities alone, as bytes.
    content, headers = to_predictor_v2(features, "r1", binary=True)
    binary = httpx.post(f"{predictor.url}{V2}", content=content, headers=headers)
    assert binary.status_code == 200, binary.text
    assert binary.headers["content-type"] == "application/octet-stream"
    answer = read_binary(binary.content, binary.headers[HEADER_LENGTH], "outputs")
    assert answer["id"] == "r1"
    (probabilities,) = answer["outputs"]
    assert probabilities["name"] == "probabilities"
    assert probabilities["parameters"] == json_outputs["probabilities"]["parameters"]
    expected = np.asarray(json_outputs["probabilities"]["data"]).reshape(2, 3)
    assert probabilities["data"].tobytes() == expected.tobytes()


def test_the_numpy_scorer_answers_held_out_rows_as_scikit_learn_does_to_the_bit(
    predictor: Server, registry: Registry, start_predictor: Callable[..., Server]
) -> None:
    # The version the session's predictor serves: other tests may promote newer ones.
    with_sklearn = start_predictor(
        registry.tracking_uri,
        "--model_uri",
        f"models:/{MODEL}/{registry.version}",
        "--compile_model",
        "false",
    )
    rows = pd.read_csv(registry.data_dir / "test.csv").sample(300, random_state=1)
    records = rows[list(RAW_FIELDS)].to_dict(orient="records")
    features = compute_features(validate_records(records))
    answers = []
    for server in (predictor, with_sklearn):
        content, headers = to_predictor_v2(features, "scorers", binary=True)
        response = httpx.post(f"{server.url}{V2}", content=content, headers=headers)
        assert response.status_code == 200, response.text
        answers.append(read_binary(response.content, response.headers[HEADER_LENGTH], "outputs"))
        scorer = "numpy" if server is predictor else "scikit-learn"
        assert f'scorer="{scorer}"' in httpx.get(f"{server.url}/metrics").text
    numpy_scored, sklearn_scored = (a["outputs"][0]["data"] for a in answers)
    assert numpy_scored.shape == (300, 3)
    assert numpy_scored.tobytes() == sklearn_scored.tobytes()


def test_an_unknown_requested_output_is_a_400(predictor: Server) -> None:
    features = compute_features(validate_records([VALID]))
    content, _ = to_predictor_v2(features, "r1", binary=False)
    body = {**orjson.loads(content), "outputs": [{"name": "confidence"}]}
    response = httpx.post(f"{predictor.url}{V2}", json=body)
    assert response.status_code == 400, response.text
    assert "confidence" in response.json()["error"]


def test_a_malformed_binary_request_to_the_predictor_is_a_400(predictor: Server) -> None:
    features = compute_features(validate_records([VALID]))
    content, headers = to_predictor_v2(features, "r1", binary=True)
    response = httpx.post(f"{predictor.url}{V2}", content=content[:-3], headers=headers)
    assert response.status_code == 400
    assert "is invalid: expected a known datatype and a binary_data_size" in response.text


def test_a_client_may_send_raw_fields_as_binary_tensors(transformer: Server) -> None:
    records = [VALID, record(category="frozen", on_promotion=False)]
    columns: dict[str, tuple[str, np.ndarray[Any, Any]]] = {}
    for name, datatype in RAW_DATATYPES.items():
        values = [r[name] for r in records]
        if datatype == "BYTES":
            columns[name] = (datatype, np.array([v.encode() for v in values], dtype=object))
        else:
            columns[name] = (datatype, np.array(values, dtype=bool if datatype == "BOOL" else None))
    content, headers = binary_request(columns, "raw-binary")
    binary = httpx.post(f"{transformer.url}{V2}", content=content, headers=headers)
    assert binary.status_code == 200, binary.text
    as_json = httpx.post(f"{transformer.url}{V2}", json=columnar(records))
    assert binary.json()["outputs"] == as_json.json()["outputs"]


def test_several_workers_serve_and_log_json_lines(
    registry: Registry, start_predictor: Callable[..., Server]
) -> None:
    # Pinned to the first version: another test promotes a newer one.
    pinned = f"models:/{MODEL}/{registry.version}"
    predictor = start_predictor(registry.tracking_uri, "--workers", "2", "--model_uri", pinned)
    # Ready means one worker answers; wait for both. KServe's supervisor restarts
    # a worker that starts slowly on a loaded machine, hence the generous bound.
    deadline = time.monotonic() + 120
    while predictor.log().count("Application startup complete") < 2:
        assert time.monotonic() < deadline, predictor.log()[-3000:]
        time.sleep(0.2)
    for _ in range(4):
        response = httpx.post(f"{predictor.url}{V1}", json={"instances": [[1.0] * 13]}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == registry.version
    lines = [line for line in predictor.log().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), [
        line for line in lines if not line.startswith("{")
    ][:3]


def test_concurrent_requests_share_predictor_calls_and_each_get_their_own_answer(
    predictor: Server, start_transformer: Callable[..., Server]
) -> None:
    # One call in flight at a time: whatever comes meanwhile must share the next.
    transformer = start_transformer(
        f"127.0.0.1:{predictor.port}", "--predictor_concurrency", "1", "--log_level", "DEBUG"
    )
    requests = [
        [record(store_id=f"S{i:03d}", item_id=f"I{i:04d}", unit_price=1.0 + i)] * (1 + i % 3)
        for i in range(24)
    ]

    def post(client: httpx.Client | httpx.AsyncClient, i: int) -> Any:
        path, body = (V1, {"instances": requests[i]}) if i % 2 else (V2, columnar(requests[i]))
        return client.post(path, json=body, headers={"x-request-id": f"concurrent-{i}"})

    def probabilities(response: httpx.Response) -> list[float]:
        body = response.json()
        if "predictions" in body:
            return [p for row in body["predictions"] for p in row["probabilities"].values()]
        data: list[float] = {o["name"]: o for o in body["outputs"]}["probabilities"]["data"]
        return data

    with httpx.Client(base_url=transformer.url) as client:
        alone = [post(client, i) for i in range(len(requests))]

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=transformer.url) as client:
            return list(await asyncio.gather(*(post(client, i) for i in range(len(requests)))))

    for response, single in zip(asyncio.run(together()), alone, strict=True):
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == single.headers["x-request-id"]
        assert probabilities(response) == pytest.approx(probabilities(single), rel=1e-12)

    metrics = httpx.get(f"{transformer.url}/metrics").text
    found = {
        kind: float(match[1])
        for kind in ("count", "sum")
        if (match := re.search(rf"transformer_predictor_call_requests_{kind}{{.*}} (\S+)", metrics))
    }
    # 24 alone (24 calls), then 24 together in fewer calls.
    assert found["sum"] == 48
    assert found["count"] < 48
    assert "one predictor call for requests concurrent-" in transformer.log()
