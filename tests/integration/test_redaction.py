"""Credentials in URLs reach their servers and nothing else: not logs, reports or MLflow.

The drift job runs against a real webhook receiver, Debian's Pushgateway with basic
auth, and a real MLflow server, each reached through a URL that carries a secret; the
predictor retries a tracking URI with a password against a closed port.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from harness.servers import Server, free_port, start_mlflow, start_server
from tests.unit.monitoring_data import feature_frame, write_parquet

#: The Pushgateway's one user and its password, and that password's bcrypt hash
#: (made with Python's crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH));
#: ``htpasswd -nbB`` makes the same kind).
PUSHGATEWAY_USER = "pusher"
PUSHGATEWAY_PASSWORD = "pgw-pass-53"
PUSHGATEWAY_HASH = "$2b$04$Uz0a/q2uxdh9dMRs8ShHneskJceFF91UqCguhN2APPxCn1kWHU8Py"

WEBHOOK_PASSWORD = "hook-pass-51"
WEBHOOK_TOKEN = "tok-abc-52"
MLFLOW_PASSWORD = "mlflow-pass-54"
SECRETS = (PUSHGATEWAY_PASSWORD, WEBHOOK_PASSWORD, WEBHOOK_TOKEN, MLFLOW_PASSWORD)


@dataclass
class Webhook:
    """A receiver that records each request, then answers 503 (so delivery fails)."""

    port: int
    received: list[dict[str, str]] = field(default_factory=list)

    def url(self, userinfo: str, query: str) -> str:
        return f"http://{userinfo}@127.0.0.1:{self.port}/hook?{query}"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers["content-length"]))
            hook.received.append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("authorization", ""),
                    "body": body.decode(),
                }
            )
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", hook.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def pushgateway(tmp_path: Path, log_dir: Path) -> Iterator[Server]:
    """Debian's Pushgateway, every path behind basic auth (its --web.config.file)."""
    binary = shutil.which("prometheus-pushgateway")
    assert binary, "scripts/system-deps.sh installs prometheus-pushgateway"
    config = tmp_path / "pushgateway-web.yml"
    config.write_text(f"basic_auth_users:\n  {PUSHGATEWAY_USER}: {PUSHGATEWAY_HASH}\n")
    port = free_port()
    server = start_server(
        "pushgateway",
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={config}",
            "--persistence.file=",  # Debian's default keeps every test's pushes in /var/lib
        ],
        port=port,
        log_dir=log_dir,
    )
    auth = (PUSHGATEWAY_USER, PUSHGATEWAY_PASSWORD)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.url}/-/ready", auth=auth, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    else:
        server.stop()
        pytest.fail(f"the Pushgateway did not start:\n{server.log()[-2000:]}")
    assert httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 401  # auth is on
    yield server
    server.stop()


@pytest.fixture
def mlflow_server(tmp_path: Path, log_dir: Path) -> Iterator[tuple[Server, Path]]:
    root = tmp_path / "mlflow"
    root.mkdir()
    server = start_mlflow(root, log_dir)
    yield server, root
    server.stop()


def _with_userinfo(url: str, userinfo: str) -> str:
    return url.replace("http://", f"http://{userinfo}@", 1)


def _files_holding(secrets: tuple[str, ...], root: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        held = [s for s in secrets if s.encode() in data]
        if held:
            found[str(path.relative_to(root))] = held
    return found


def test_the_drift_job_delivers_with_credentials_and_writes_none_of_them(
    webhook: Webhook,
    pushgateway: Server,
    mlflow_server: tuple[Server, Path],
    tmp_path: Path,
) -> None:
    mlflow, mlflow_root = mlflow_server
    reference = write_parquet(feature_frame(5000, 20), tmp_path / "reference.parquet")
    moved = feature_frame(5000, 22, price_shift_sigma=0.5)
    current = write_parquet(moved, tmp_path / "current.parquet")
    out = tmp_path / "out"
    hook_url = webhook.url(f"alerts:{WEBHOOK_PASSWORD}", f"channel=ops&Token={WEBHOOK_TOKEN}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring",
            "drift",
            "--reference",
            str(reference),
            "--current",
            str(current),
            "--critical_features",
            "unit_price",
            "--output",
            str(out),
            "--alert_webhook",
            hook_url,
            "--pushgateway",
            _with_userinfo(pushgateway.url, f"{PUSHGATEWAY_USER}:{PUSHGATEWAY_PASSWORD}"),
            "--log_to_mlflow",
            "--tracking_uri",
            _with_userinfo(mlflow.url, f"monitor:{MLFLOW_PASSWORD}"),
            "--log_level",
            "DEBUG",  # httpx and MLflow log request URLs at DEBUG
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((out / "drift_report.json").read_text())
    assert report["dataset_drift"] is True

    # Each delivery went out with its credentials...
    assert len(webhook.received) == 1
    request = webhook.received[0]
    assert request["path"] == f"/hook?channel=ops&Token={WEBHOOK_TOKEN}"
    expected = base64.b64encode(f"alerts:{WEBHOOK_PASSWORD}".encode()).decode()
    assert request["authorization"] == f"Basic {expected}"
    assert json.loads(request["body"])["dataset_drift"] is True
    pushed = httpx.get(
        f"{pushgateway.url}/metrics", auth=(PUSHGATEWAY_USER, PUSHGATEWAY_PASSWORD), timeout=10
    ).text
    assert any(
        line.startswith("monitoring_drift_dataset_drift{")
        and 'job="monitoring_drift"' in line
        and line.endswith(" 1")
        for line in pushed.splitlines()
    ), [line for line in pushed.splitlines() if line.startswith("monitoring_")][:5]
    run = MlflowClient(mlflow.url).get_run(report["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["current"] == str(current)

    # ...the failed one is reported by the webhook's origin alone...
    assert report["delivery_errors"] == [
        f"alert_webhook http://127.0.0.1:{webhook.port}/…: answered 503 Service Unavailable"
    ]
    # ...and no secret is in the logs, the report files or anything MLflow stored.
    assert [s for s in SECRETS if s in done.stderr + done.stdout] == [], [
        line for line in (done.stderr + done.stdout).splitlines() if any(s in line for s in SECRETS)
    ][:5]
    assert "alerts:***@" in done.stderr  # the DEBUG lines name the webhook, redacted
    assert _files_holding(SECRETS, out) == {}
    assert {"mlflow.db"} <= set(p.name for p in mlflow_root.rglob("*"))
    assert _files_holding(SECRETS, mlflow_root) == {}


def test_the_predictor_retries_a_tracking_uri_without_logging_its_password(
    start_predictor: Callable[..., Server],
) -> None:
    predictor = start_predictor(
        f"http://reader:pass-7f3a@127.0.0.1:{free_port()}",
        "--load_timeout_seconds",
        "3",
        "--retry_initial_seconds",
        "0.2",
        wait=False,
    )
    assert predictor.process.wait(timeout=60) == 1
    log = predictor.log()
    assert log.count("waiting for model") >= 2
    assert "cannot serve: gave up on model" in log
    assert "reader:***@127.0.0.1" in log  # the server is still named
    assert "pass-7f3a" not in log
