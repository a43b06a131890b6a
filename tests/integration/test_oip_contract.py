"""Contract tests: both servers' answers against the Open Inference Protocol's own
OpenAPI document (``shared/schemas/oip/open_inference_rest.yaml``)."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import pytest
import yaml

from common.core.contract import FEATURES
from harness.servers import Server
from tests.integration.conftest import MODEL, Registry
from tests.integration.test_protocol_fuzz import oip_document
from tests.unit.records import VALID
from transformer.protocol import RAW_DATATYPES


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(oip_document().read_text())
    return {"components": document["components"]}


def conforms(components: dict[str, Any], name: str, body: Any) -> None:
    """Raise naming the first difference when ``body`` is not the OIP's ``name`` object."""
    schema = {"$ref": f"#/components/schemas/{name}", **components}
    jsonschema_rs.Draft4Validator(schema).validate(body)


def raw_v2() -> dict[str, Any]:
    return {
        "id": "contract-1",
        "inputs": [
            {"name": name, "datatype": datatype, "shape": [1], "data": [VALID[name]]}
            for name, datatype in RAW_DATATYPES.items()
        ],
    }


def features_v2() -> dict[str, Any]:
    return {
        "id": "contract-2",
        "inputs": [
            {"name": f.name, "datatype": f.datatype, "shape": [1], "data": [1]} for f in FEATURES
        ],
    }


def test_server_and_model_metadata_are_the_oips(
    components: dict[str, Any], transformer: Server, predictor: Server, registry: Registry
) -> None:
    for server in (transformer, predictor):
        conforms(components, "metadata_server_response", httpx.get(f"{server.url}/v2").json())
        metadata = httpx.get(f"{server.url}/v2/models/{MODEL}").json()
        conforms(components, "metadata_model_response", metadata)
        assert metadata["versions"] == [registry.version]
        versioned = httpx.get(f"{server.url}/v2/models/{MODEL}/versions/{registry.version}").json()
        conforms(components, "metadata_model_response", versioned)
        unknown = httpx.get(f"{server.url}/v2/models/no-such-model")
        assert unknown.status_code == 404
        conforms(components, "metadata_model_error_response", unknown.json())


def test_inference_answers_and_errors_are_the_oips(
    components: dict[str, Any], transformer: Server, predictor: Server
) -> None:
    for server, body in ((transformer, raw_v2()), (predictor, features_v2())):
        url = f"{server.url}/v2/models/{MODEL}/infer"
        answer = httpx.post(url, json=body)
        assert answer.status_code == 200, answer.text
        conforms(components, "inference_response", answer.json())
        assert answer.json()["id"] == body["id"]
        body["inputs"][0]["shape"] = [2]  # disagrees with its one datum
        refused = httpx.post(url, json=body)
        assert refused.status_code == 400
        conforms(components, "inference_error_response", refused.json())
