"""schemathesis against both servers, from the Open Inference Protocol's OpenAPI
document and from each server's own: every operation, every generated request
answered without a 5xx, both servers healthy and ready afterwards.

Each server's own document is fetched from the running server's ``/openapi.json``
(the session's servers run with ``--enable_openapi true``); the OIP document is
read from ``../shared/schemas/oip/``. Parameters naming a model or a version are
pinned, most of the time, to the ones served, so that requests reach the handlers.

Generated cases per run (derandomised, so the same each run; counted by calls of
``case.call_and_validate``): 702 from the OIP document (each sent to both servers),
620 from the transformer's own, 620 from the predictor's own, 1,942 in all; with the
2,100 of ``tests/unit/test_fuzz.py`` (``pytest --hypothesis-show-statistics``), 4,042
per CI run. Besides ``max_examples`` per operation, schemathesis adds the cases of its
examples and coverage phases.

What it found, each now a test below: one anonymous ``POST
/v2/repository/models/NAME/unload`` unloaded the model (every later request a 404,
while ``/v2/health/ready`` said 200), ``.../load`` answered 503, ``:explain`` 501, and
``GET /v2/models/NAME/ready?model_version=V`` 501.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from harness.servers import Server
from tests.integration.conftest import MODEL, READY, Registry
from tests.unit.records import VALID
from transformer.protocol import RAW_DATATYPES

OIP = Path("schemas") / "oip" / "open_inference_rest.yaml"

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def oip_document() -> Path:
    """The OIP document in the ``shared/`` folder beside the repository (or above it)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / OIP
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no shared/{OIP} above {here}")


def mostly(served: str) -> dict[str, Any]:
    """A string schema that is ``served`` most of the time."""
    return {"anyOf": [{"enum": [served]}, {"type": "string"}]}


def pinned(version: str) -> dict[str, Any]:
    """The OIP document with ``${MODEL_NAME}``/``${MODEL_VERSION}`` as our model, mostly."""
    raw = oip_document().read_text().replace("${MODEL_NAME}", "{MODEL_NAME}")
    raw = raw.replace("${MODEL_VERSION}", "{MODEL_VERSION}")
    document: dict[str, Any] = yaml.safe_load(raw)
    for item in document["paths"].values():
        for parameter in item.get("parameters", []):
            parameter["schema"] = mostly(MODEL if parameter["name"] == "MODEL_NAME" else version)
    return document


def served_document(server: Server, version: str) -> dict[str, Any]:
    """The document ``server`` serves, its ``model_name``/``model_version`` pinned, mostly."""
    answer = httpx.get(f"{server.url}/openapi.json", timeout=10)
    answer.raise_for_status()
    document: dict[str, Any] = answer.json()
    served = {"model_name": MODEL, "model_version": version}
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in served:
                    parameter["schema"] = mostly(served[parameter["name"]])
    return document


@pytest.fixture(scope="module")
def oip_schema(registry: Registry) -> Any:
    return schemathesis.openapi.from_dict(pinned(registry.version))


@pytest.fixture(scope="module")
def transformer_schema(transformer: Server, registry: Registry) -> Any:
    return schemathesis.openapi.from_dict(served_document(transformer, registry.version))


@pytest.fixture(scope="module")
def predictor_schema(predictor: Server, registry: Registry) -> Any:
    return schemathesis.openapi.from_dict(served_document(predictor, registry.version))


oip = schemathesis.pytest.from_fixture("oip_schema")
transformers_own = schemathesis.pytest.from_fixture("transformer_schema")
predictors_own = schemathesis.pytest.from_fixture("predictor_schema")


def test_each_server_documents_what_it_serves(transformer: Server, predictor: Server) -> None:
    for server in (transformer, predictor):
        paths = set(httpx.get(f"{server.url}/openapi.json", timeout=10).json()["paths"])
        assert {"/v1/models/{model_name}:predict", "/v2/models/{model_name}/infer"} <= paths
        assert not any(path.startswith("/v2/repository/") for path in paths)


def test_what_the_fuzzing_found_is_a_4xx_and_leaves_the_model_served(
    transformer: Server, predictor: Server, registry: Registry
) -> None:
    for server in (transformer, predictor):
        for action in ("unload", "load"):  # the model was unloaded; load was a 503
            answer = httpx.post(f"{server.url}/v2/repository/models/{MODEL}/{action}", timeout=10)
            assert answer.status_code == 404, answer.text
        assert httpx.get(f"{server.url}{READY}", timeout=10).status_code == 200
        for version, status in ((registry.version, 200), ("999", 404)):  # a 501
            answer = httpx.get(f"{server.url}{READY}?model_version={version}", timeout=10)
            assert answer.status_code == status, answer.text
        # Infer used to be served by the loaded version whichever version the caller named.
        infer = f"{server.url}/v2/models/{MODEL}/infer?model_version=999"
        answer = httpx.post(infer, json={"inputs": []}, timeout=10)
        assert answer.status_code == 404, answer.text
        assert f"it serves version {registry.version}" in answer.json()["error"]
        answer = httpx.post(f"{server.url}/v1/models/{MODEL}:explain", json={}, timeout=10)
        assert answer.status_code == 404, answer.text  # a 501
    columns = [
        {"name": name, "datatype": datatype, "shape": [1], "data": [VALID[name]]}
        for name, datatype in RAW_DATATYPES.items()
    ]
    infer = f"{transformer.url}/v2/models/{MODEL}/infer?model_version={registry.version}"
    answer = httpx.post(infer, json={"inputs": columns}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == registry.version


@oip.parametrize()
@FUZZ
def test_no_generated_oip_request_gets_a_5xx(
    case: Any, transformer: Server, predictor: Server
) -> None:
    for server in (transformer, predictor):
        case.call_and_validate(base_url=server.url, checks=[not_a_server_error], timeout=10)


@transformers_own.parametrize()
@FUZZ
def test_no_request_from_the_transformers_own_document_gets_a_5xx(
    case: Any, transformer: Server
) -> None:
    case.call_and_validate(base_url=transformer.url, checks=[not_a_server_error], timeout=10)


@predictors_own.parametrize()
@FUZZ
def test_no_request_from_the_predictors_own_document_gets_a_5xx(
    case: Any, predictor: Server
) -> None:
    case.call_and_validate(base_url=predictor.url, checks=[not_a_server_error], timeout=10)


def test_both_servers_are_healthy_and_ready_after_the_fuzzing(
    transformer: Server, predictor: Server
) -> None:
    for server in (transformer, predictor):
        for path in ("/v2/health/live", "/v2/health/ready", READY):
            assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 200, path
