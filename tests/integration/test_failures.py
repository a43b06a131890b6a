"""What the client sees when the predictor is gone, slow, or says no."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from harness.servers import Server
from tests.integration.conftest import MODEL, StartPair
from tests.integration.recording import recording_predictor
from tests.integration.test_serving import V1, V2, columnar
from tests.unit.records import VALID


def test_a_stopped_predictor_is_a_503_with_a_clear_reason_that_does_not_show_its_address(
    start_pair: StartPair,
) -> None:
    predictor, transformer = start_pair()
    assert httpx.post(f"{transformer.url}{V1}", json={"instances": [VALID]}).status_code == 200

    predictor.stop()
    for path, body in ((V1, {"instances": [VALID]}), (V2, columnar([VALID]))):
        response = httpx.post(f"{transformer.url}{path}", json=body)
        assert response.status_code == 503
        assert response.json()["error"] == "the predictor is unreachable: try again soon"
        assert "127.0.0.1" not in response.text and str(predictor.port) not in response.text
    # The address is in the transformer's log, for whoever operates it.
    time.sleep(0.3)
    assert f"http://127.0.0.1:{predictor.port}/" in transformer.log()


def test_a_predictor_slower_than_the_timeout_is_a_504(
    start_transformer: Callable[..., Server],
) -> None:
    with recording_predictor(delay_seconds=3) as slow:
        transformer = start_transformer(
            f"127.0.0.1:{slow.port}", "--predictor_request_timeout_seconds", "0.5"
        )
        response = httpx.post(f"{transformer.url}{V1}", json={"instances": [VALID]}, timeout=10)
    assert response.status_code == 504
    assert response.json()["error"] == "the predictor did not answer within 0.5s"


def test_a_predictor_4xx_reaches_the_client_as_the_same_4xx(
    predictor: Server, start_transformer: Callable[..., Server]
) -> None:
    # A transformer serving another name asks the predictor for a model it lacks.
    transformer = start_transformer(f"127.0.0.1:{predictor.port}", "--model_name", "other-model")
    response = httpx.post(
        f"{transformer.url}/v1/models/other-model:predict", json={"instances": [VALID]}
    )
    assert response.status_code == 404
    assert "other-model" in response.json()["error"]


def test_the_v1_predictor_protocol_gives_the_same_answer_as_v2(
    predictor: Server, transformer: Server, start_transformer: Callable[..., Server]
) -> None:
    v1_hop = start_transformer(f"127.0.0.1:{predictor.port}", "--predictor_protocol", "v1")
    records = [VALID, {**VALID, "store_id": "S002"}]
    via_v1 = httpx.post(f"{v1_hop.url}{V1}", json={"instances": records}).json()
    via_v2 = httpx.post(f"{transformer.url}{V1}", json={"instances": records}).json()
    assert via_v1["predictions"] == via_v2["predictions"]
    assert via_v1["model_name"] == MODEL
