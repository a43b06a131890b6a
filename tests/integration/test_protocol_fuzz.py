"""schemathesis against both servers, from the Open Inference Protocol's own OpenAPI
document: every generated request is answered without a 5xx, and the servers stay
ready. The document's path templates are pinned to the model and version served."""

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

pytestmark = pytest.mark.integration

OIP = Path("schemas") / "oip" / "open_inference_rest.yaml"


def oip_document() -> Path:
    """The OIP document in the ``shared/`` folder beside the repository (or above it)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "shared" / OIP
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no shared/{OIP} above {here}")


def pinned(version: str) -> dict[str, Any]:
    """The OIP document with ``${MODEL_NAME}``/``${MODEL_VERSION}`` as our model, mostly."""
    raw = oip_document().read_text().replace("${MODEL_NAME}", "{MODEL_NAME}")
    raw = raw.replace("${MODEL_VERSION}", "{MODEL_VERSION}")
    document: dict[str, Any] = yaml.safe_load(raw)
    for item in document["paths"].values():
        for parameter in item.get("parameters", []):
            # Our names most of the time, so that requests reach the handlers.
            served = MODEL if parameter["name"] == "MODEL_NAME" else version
            parameter["schema"] = {"anyOf": [{"enum": [served]}, {"type": "string"}]}
    return document


@pytest.fixture(scope="module")
def oip_schema(registry: Registry) -> Any:
    return schemathesis.openapi.from_dict(pinned(registry.version))


schema = schemathesis.pytest.from_fixture("oip_schema")


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_oip_request_gets_a_5xx(
    case: Any, transformer: Server, predictor: Server
) -> None:
    for server in (transformer, predictor):
        case.call_and_validate(base_url=server.url, checks=[not_a_server_error], timeout=10)


def test_both_servers_are_ready_after_the_fuzzing(transformer: Server, predictor: Server) -> None:
    for server in (transformer, predictor):
        assert httpx.get(f"{server.url}{READY}").status_code == 200
