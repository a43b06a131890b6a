"""Every rule and every dashboard query against a real Prometheus scraping the local stack.

The stack: MLflow with the trained model, a predictor, a capturing transformer in front of it
(namespace "ml"), a second transformer whose predictor is gone (namespace "ml-broken", as a
second release whose predictor pods died), and a real Pushgateway that the real drift job
pushes to. Prometheus (Debian's package) scrapes all four every second, as the chart's
PodMonitor would (the `component` and `namespace` labels), the Pushgateway with
honor_labels, and evaluates the chart's rules file itself.

After bounded traffic (good records with drifted prices, invalid records, a request too big
for the capture queue, requests to the broken transformer):

- every recording rule and every dashboard panel query returns data;
- every alert's signal (its expression without the threshold) returns data, and the alerts
  this stack provokes fire: 5xx and 4xx ratios and a missing predictor in "ml-broken", rows
  the capture dropped, drift; the registry's version is served (the version alert does not);
- Prometheus reports no rule evaluation error.

tests/deploy/prometheus_files.NO_INPUT_HERE lists the one exception (kube-state-metrics).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.servers import Server, free_port, start_server
from tests.deploy.prometheus_files import (
    NO_INPUT_HERE,
    RULES_FILE,
    alerts,
    dashboard_queries,
    recording_rules,
    signal_of,
    with_variables,
)
from tests.integration.conftest import MODEL, Registry
from tests.unit.records import record

pytestmark = pytest.mark.integration

ALIAS_URI = f"models:/{MODEL}@production"
#: Alerts the staged stack makes fire, each with the labels that must say where.
FIRING = {
    "SalesQuantityServerErrors": {"namespace": "ml-broken", "status_class": "5xx"},
    "SalesQuantityClientErrors": {"namespace": "ml-broken", "status_class": "4xx"},
    "SalesQuantityPredictorUnavailable": {"namespace": "ml-broken"},
    "SalesQuantityCaptureRowsDropped": {"namespace": "ml"},
    "SalesQuantityDriftDetected": {"model_name": MODEL},
}
WAIT_SECONDS = 90.0  # for scrapes and rule evaluations to show the traffic


class Prometheus:
    """The HTTP API of a Prometheus server."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar) ``promql`` returns now; fails on a query error."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (promql, body)
        result: list[dict[str, Any]] | Any = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        assert isinstance(result, list)
        return result

    def rules(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]

    def targets_up(self) -> int:
        return len(self.query("up == 1"))


def wait_for(
    check: Callable[[], bool], what: Callable[[], str], seconds: float = WAIT_SECONDS
) -> None:
    """Poll ``check`` each second until it holds, ``seconds`` at most; else fail with ``what()``."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"after {seconds:.0f} s: {what()}")
        time.sleep(1.0)


@pytest.fixture()
def pushgateway(tmp_path: Path) -> Iterator[Server]:
    binary = shutil.which("prometheus-pushgateway")
    assert binary, "scripts/system-deps.sh installs prometheus-pushgateway"
    port = free_port()
    server = start_server(
        "pushgateway",
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        port=port,
        log_dir=tmp_path,
        ready_path="/-/ready",
        timeout=30,
    )
    yield server
    server.stop()


def start_prometheus(directory: Path, targets: dict[str, tuple[int, dict[str, str]]]) -> Server:
    """Prometheus on 127.0.0.1 scraping ``targets`` ({name: (port, labels)}) and the rules."""
    binary = shutil.which("prometheus")
    assert binary, "scripts/system-deps.sh installs prometheus (Debian's package)"
    servers = [
        {"targets": [f"127.0.0.1:{port}"], "labels": labels}
        for name, (port, labels) in targets.items()
        if name != "pushgateway"
    ]
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            {"job_name": "sales-quantity-classifier", "static_configs": servers},
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": [f"127.0.0.1:{targets['pushgateway'][0]}"]}],
            },
        ],
    }
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    return start_server(
        "prometheus",
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port=port,
        log_dir=directory,
        ready_path="/-/ready",
        timeout=60,
    )


def send_traffic(transformer: Server, broken: Server, registry: Registry, tmp_path: Path) -> None:
    """Bounded traffic: drifted records through the simulator, then errors of each kind."""
    simulated = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring",
            "simulate",
            "--transformer_url",
            transformer.url,
            "--rate",
            "40",
            "--duration",
            "3",
            "--rows_per_request",
            "6",
            "--data",
            str(registry.data_dir / "train.csv"),
            "--drift",
            "price=2.0",
            "--labels_out",
            str(tmp_path / "labels.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert simulated.returncode == 0, simulated.stderr[-2000:]
    path = f"/v1/models/{MODEL}:predict"
    with httpx.Client(timeout=10) as client:
        # 60 rows: more than the capture queue holds (50), so they are dropped, not captured
        big = client.post(f"{transformer.url}{path}", json={"instances": [record()] * 60})
        assert big.status_code == 200, big.text
        for _ in range(5):
            bad = client.post(f"{transformer.url}{path}", json={"instances": [record(store_id=7)]})
            assert bad.status_code == 400, bad.text
        # rate() takes a series' first value as its start: errors whose status appears for
        # the first time are seen from the second scrape on, so they come in rounds.
        for _ in range(4):  # late scrapes on a busy machine can merge two rounds
            for _ in range(3):
                good = client.post(f"{broken.url}{path}", json={"instances": [record()]})
                assert good.status_code == 503, good.text
                bad = client.post(
                    f"{broken.url}{path}", json={"instances": [record(unit_price=-1)]}
                )
                assert bad.status_code == 400, bad.text
            time.sleep(1.5)  # the scrape interval is 1 s


def run_drift_job(
    registry: Registry, capture: Path, pushgateway: Server, out: Path
) -> dict[str, Any]:
    """``python -m monitoring drift`` as the CronJob runs it, pushing to the Pushgateway."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring",
            "drift",
            "--current",
            str(capture),
            "--window",
            "1h",
            "--tracking_uri",
            registry.tracking_uri,
            "--model_uri",
            ALIAS_URI,
            "--output",
            str(out),
            "--pushgateway",
            pushgateway.url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads((out / "drift_report.json").read_text())
    assert report["delivery_errors"] == []
    return report


def test_every_rule_and_dashboard_query_returns_data_from_the_live_stack(
    registry: Registry,
    start_predictor: Callable[..., Server],
    start_transformer: Callable[..., Server],
    pushgateway: Server,
    tmp_path: Path,
) -> None:
    predictor = start_predictor(registry.tracking_uri, "--model_uri", ALIAS_URI)
    capture = tmp_path / "capture"
    transformer = start_transformer(
        f"127.0.0.1:{predictor.port}",
        "--capture_uri",
        str(capture),
        "--capture_queue_rows",
        "50",
        "--capture_batch_rows",
        "12",
        "--capture_flush_seconds",
        "0.2",
    )
    broken = start_transformer(f"127.0.0.1:{free_port()}")  # nothing listens there
    prometheus_server = start_prometheus(
        tmp_path,
        {
            "predictor": (predictor.port, {"namespace": "ml", "component": "predictor"}),
            "transformer": (transformer.port, {"namespace": "ml", "component": "transformer"}),
            "broken": (broken.port, {"namespace": "ml-broken", "component": "transformer"}),
            "pushgateway": (pushgateway.port, {}),
        },
    )
    try:
        prometheus = Prometheus(prometheus_server.url)
        wait_for(lambda: prometheus.targets_up() == 4, lambda: "not all four targets up", 60)

        send_traffic(transformer, broken, registry, tmp_path)
        time.sleep(1.0)  # the capture writes every 0.2 s
        report = run_drift_job(registry, capture, pushgateway, tmp_path / "report")
        assert report["dataset_drift"] is True, report["drifted_features"]
        served = prometheus.query("predictor_model_info")
        assert {s["metric"]["model_version"] for s in served} == {report["model_version"]}

        queries = {f"recording rule {r.name}": r.expr for r in recording_rules()}
        queries |= {f"its series {r.name}": r.name for r in recording_rules()}
        for alert in alerts():
            if alert.name not in NO_INPUT_HERE:
                queries[f"signal of {alert.name}"] = signal_of(alert.expr)
        for alert in alerts():
            if alert.name in FIRING:
                queries[f"{alert.name}, provoked, fires"] = alert.expr
        for title, query in dashboard_queries():
            queries[f"panel {title}"] = with_variables(query)

        missing: dict[str, str] = {}

        def all_return_data() -> bool:
            missing.clear()
            for what, query in queries.items():
                if not prometheus.query(query):
                    missing[what] = query
            return not missing

        wait_for(all_return_data, lambda: f"without data: {json.dumps(missing, indent=1)}")

        # each provoked alert fires where the stack provoked it
        for alert_name, labels in FIRING.items():
            (expr,) = [a.expr for a in alerts() if a.name == alert_name]
            fired = [s["metric"] for s in prometheus.query(expr)]
            assert any(all(m.get(k) == v for k, v in labels.items()) for m in fired), (
                alert_name,
                fired,
            )
        # the registry's version (the drift job resolved the alias) is the one served
        served_flag = prometheus.query("registered_model_version:registry_version_served:bool")
        assert [(s["metric"]["model_version"], s["value"][1]) for s in served_flag] == [
            (report["model_version"], "1")
        ]
        (version_alert,) = [a for a in alerts() if a.name.startswith("SalesQuantityServedVersion")]
        assert prometheus.query(version_alert.expr) == []
        # the alert that needs kube-state-metrics runs, and finds nothing to say here
        for name in NO_INPUT_HERE:
            (alert,) = [a for a in alerts() if a.name == name]
            assert prometheus.query(alert.expr) == []

        # Prometheus evaluated every rule of the file without an error
        evaluated = prometheus.rules()
        assert {r["name"] for r in evaluated} == {r.name for r in recording_rules() + alerts()}
        assert [(r["name"], r.get("lastError")) for r in evaluated if r["health"] != "ok"] == []
    finally:
        prometheus_server.stop()
