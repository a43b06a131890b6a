"""The servers' edge (issue 10): methods, error shape, logs, limits, metrics, versioned
paths, several workers, and a graceful stop under load, on real servers."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from harness.servers import Server
from tests.integration.conftest import MODEL, READY, Registry
from tests.unit.records import VALID

V1 = f"/v1/models/{MODEL}:predict"
V2 = f"/v2/models/{MODEL}/infer"
FEATURES_V1 = {"instances": [[12, 457, 2, 5, 3, 1, 0.5, 0.5, 3.49, 0.1, 3.14, 1, 0]]}


def metric(server: Server, name: str, **labels: str) -> float:
    """The value of one sample of ``/metrics`` (0 when absent)."""
    text = httpx.get(f"{server.url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize("path", [V1, V2])
def test_a_wrong_method_on_an_inference_path_is_a_405_with_the_error_shape(
    transformer: Server, predictor: Server, path: str
) -> None:
    for server in (transformer, predictor):
        response = httpx.get(f"{server.url}{path}")
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == "POST"
        assert set(response.json()) == {"error", "request_id"}


def test_client_mistakes_are_4xx_with_the_id_and_logged_without_a_traceback(
    transformer: Server,
) -> None:
    mistakes = [
        ("POST", V1, b"not json", 400),
        ("POST", V1, b"", 400),
        ("POST", "/v1/models/no-such-model:predict", b"{}", 404),
        ("POST", "/v2/models/no-such-model/infer", b'{"inputs": []}', 404),
        ("GET", "/v2/models/no-such-model", b"", 404),
    ]
    logged_before = len(transformer.log())
    for method, path, body, status in mistakes:
        response = httpx.request(
            method,
            f"{transformer.url}{path}",
            content=body,
            headers={"x-request-id": f"mistake-{status}", "content-type": "application/json"},
        )
        assert response.status_code == status, (path, response.text)
        assert response.json()["request_id"] == f"mistake-{status}"
        assert response.json()["error"]
    time.sleep(0.5)
    since = transformer.log()[logged_before:]
    lines = [line for line in since.splitlines() if "mistake-" in line]
    assert lines, "client mistakes are logged with their request id"
    assert '"level": "ERROR"' not in since and "Traceback" not in since, since[-2000:]


def test_a_body_or_row_count_over_its_limit_is_a_413(
    predictor: Server, start_transformer: Callable[..., Server]
) -> None:
    transformer = start_transformer(
        f"127.0.0.1:{predictor.port}", "--max_body_bytes", "4096", "--max_rows_per_request", "3"
    )
    big = httpx.post(f"{transformer.url}{V1}", json={"instances": [VALID] * 40})
    assert big.status_code == 413 and "max_body_bytes" in big.json()["error"]
    many = httpx.post(f"{transformer.url}{V1}", json={"instances": [VALID] * 4})
    assert many.status_code == 413 and "max_rows_per_request" in many.json()["error"]
    assert httpx.post(f"{transformer.url}{V1}", json={"instances": [VALID] * 3}).status_code == 200


def test_requests_are_counted_by_route_status_and_version_on_both_servers(
    transformer: Server, predictor: Server, registry: Registry
) -> None:
    version = registry.version

    def counts() -> dict[str, float]:
        return {
            "t200": metric(
                transformer,
                "requests_total",
                route="v1_predict",
                status="200",
                model_version=version,
            ),
            "t400": metric(transformer, "requests_total", route="v1_predict", status="400"),
            "p200": metric(
                predictor, "requests_total", route="v1_predict", status="200", model_version=version
            ),
            "latency": metric(transformer, "request_duration_seconds_count", route="v1_predict"),
        }

    before = counts()
    for _ in range(3):
        assert httpx.post(f"{transformer.url}{V1}", json={"instances": [VALID]}).status_code == 200
    assert httpx.post(f"{transformer.url}{V1}", json={"instances": [{}]}).status_code == 400
    assert httpx.post(f"{predictor.url}{V1}", json=FEATURES_V1).status_code == 200
    after = counts()
    # The transformer's 200s called the predictor's V2 route, not its V1 one.
    assert after == {
        "t200": before["t200"] + 3,
        "t400": before["t400"] + 1,
        "p200": before["p200"] + 1,
        "latency": before["latency"] + 4,
    }


def test_versioned_paths_serve_the_served_version_and_404_another(
    transformer: Server, predictor: Server, registry: Registry
) -> None:
    version = registry.version
    for server in (predictor, transformer):
        base = f"{server.url}/v2/models/{MODEL}/versions"
        assert httpx.get(f"{base}/{version}/ready").status_code == 200
        assert httpx.get(f"{base}/{version}").json()["name"] == MODEL
        other = httpx.get(f"{base}/999/ready")
        assert other.status_code == 404
        assert f"it serves version {version}" in other.json()["error"]
    body = {
        "inputs": [
            {"name": n, "datatype": "BYTES", "shape": [1], "data": [VALID[n]]}
            for n in ("date", "store_id", "item_id", "category")
        ]
    }
    body["inputs"] += [
        {"name": "unit_price", "datatype": "FP64", "shape": [1], "data": [VALID["unit_price"]]},
        {"name": "discount_pct", "datatype": "FP64", "shape": [1], "data": [VALID["discount_pct"]]},
        {"name": "on_promotion", "datatype": "BOOL", "shape": [1], "data": [True]},
        {"name": "is_holiday", "datatype": "BOOL", "shape": [1], "data": [False]},
    ]
    served = httpx.post(f"{transformer.url}/v2/models/{MODEL}/versions/{version}/infer", json=body)
    assert served.status_code == 200, served.text
    assert served.json()["model_version"] == version


def test_two_workers_count_every_request_once(
    registry: Registry, start_predictor: Callable[..., Server]
) -> None:
    predictor = start_predictor(registry.tracking_uri, "--workers", "2")
    sent = 40
    with httpx.Client(base_url=predictor.url) as client:  # one connection
        for _ in range(sent // 2):
            assert client.post(V1, json=FEATURES_V1).status_code == 200
    for _ in range(sent // 2):  # a new connection each: spread over both workers
        assert httpx.post(f"{predictor.url}{V1}", json=FEATURES_V1).status_code == 200
    counted = metric(predictor, "requests_total", route="v1_predict", status="200")
    assert counted == sent
    # the per-version metrics too: each worker unpickled the model and its children
    assert metric(predictor, "predictor_version_requests_total", status_class="2xx") == sent
    assert metric(predictor, "predictor_predicted_class_total") == sent


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_readiness_first_and_fails_no_request_in_flight(
    workers: int, predictor: Server, start_transformer: Callable[..., Server]
) -> None:
    transformer = start_transformer(
        f"127.0.0.1:{predictor.port}",
        "--workers",
        str(workers),
        "--shutdown_delay_seconds",
        "5",
        "--shutdown_grace_seconds",
        "10",
    )
    outcomes: list[int | str] = []
    stop = threading.Event()
    # Once readiness fails, Kubernetes takes the pod out of its endpoints within the delay,
    # so no new connection arrives when the server stops accepting; connections still in
    # the listener's backlog at that moment are reset by the kernel, whatever the server
    # does. The clients, like kube-proxy, stop opening connections a second before the delay
    # ends; every request they started must then be answered.
    last_start = [time.monotonic() + 60]

    def load() -> None:
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < min(deadline, last_start[0]):
            try:  # a new connection per request: refused once the server stops accepting
                response = httpx.post(
                    f"{transformer.url}{V1}",
                    json={"instances": [VALID] * 50},
                    headers={"connection": "close"},
                    timeout=10,
                )
                outcomes.append(response.status_code)
            except httpx.ConnectError:
                outcomes.append("refused")
                time.sleep(0.01)
            except httpx.TransportError as exc:  # a request in flight that failed
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    signalled = time.monotonic()
    transformer.process.send_signal(signal.SIGTERM)
    last_start[0] = signalled + 5 - 1
    # Several workers hear of it from their supervisor, which looks every 0.5 s.
    time.sleep(0.8)
    readiness = [  # a new connection each: with two workers, spread over both
        httpx.get(f"{transformer.url}{READY}", headers={"connection": "close"}) for _ in range(4)
    ]
    served_meanwhile = httpx.post(f"{transformer.url}{V1}", json={"instances": [VALID]})
    exit_code = transformer.process.wait(timeout=20)
    exited_after = time.monotonic() - signalled
    stop.set()
    for thread in threads:
        thread.join(30)
    assert [r.status_code for r in readiness] == [503] * 4
    assert all("shutting down" in r.json()["error"] for r in readiness)
    assert served_meanwhile.status_code == 200
    assert exit_code == 0, transformer.log()[-2000:]
    assert 5 <= exited_after < 5 + 10 + 5
    answered = [o for o in outcomes if o != "refused"]
    assert answered and set(answered) == {200}, sorted(set(map(str, outcomes)))
