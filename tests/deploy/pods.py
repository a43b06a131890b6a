"""Turn a rendered container into the process the kubelet would start, on 127.0.0.1 (or
inside its image, tests/images/test_manifests_in_images.py), and ask it V1 and V2.

The command, args and env come from the manifest, plus the arguments KServe's controller
appends to a custom transformer (kserve/kserve pkg/apis/serving/v1beta1/transformer_custom.go,
``GetContainer``: ``--model_name``, ``--predictor_host <isvc>-predictor.<namespace>``,
``--http_port 8080``, ``--workers`` with containerConcurrency, each only if absent; nothing
for a custom predictor). Only hosts, ports and mount paths are substituted. Every
environment variable must be a setting the process knows, so a misspelt name fails here
rather than being ignored in a pod.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from pydantic import BaseModel

from harness.servers import Server
from monitoring.settings import DriftSettings, PerformanceSettings
from predictor.settings import PredictorSettings
from tests.deploy.manifests import (
    CHART,
    NAMESPACE,
    ROOT,
    Obj,
    helm_render,
    one,
    overlay,
    pod_specs,
    values_of,
)
from tests.integration.conftest import MODEL
from tests.unit.records import VALID as RECORD
from transformer.settings import TransformerSettings

# What the images run when a container names no command (issue 12's entry points; read from
# the Dockerfile's ENTRYPOINT once it exists).
ENTRYPOINTS = {
    "predictor": ["python", "-m", "predictor"],
    "transformer": ["python", "-m", "transformer"],
    "monitoring": ["python", "-m", "monitoring"],
}
# Read by MLflow's client or the object stores' SDKs, not by the parts' settings.
CLIENT_ENV = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
CLIENT_ENV |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def entrypoint(part: str) -> list[str]:
    dockerfile = ROOT / f"Dockerfile.{part}"
    if dockerfile.exists():
        match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", dockerfile.read_text(), re.M)
        if match:
            command: list[str] = json.loads(match[1])
            return command
    return ENTRYPOINTS[part]


def kserve_args(container: Obj, component: str, isvc: Obj, namespace: str) -> list[str]:
    """The container's args as KServe's controller leaves them."""
    args = list(container.get("args", []))
    if component != "transformer":
        return args
    name = isvc["metadata"]["name"]
    for flag, value in (
        ("--model_name", name),
        ("--predictor_host", f"{name}-predictor.{namespace}"),
        ("--http_port", "8080"),
    ):
        if flag not in args:
            args += [flag, value]
    concurrency = isvc["spec"][component].get("containerConcurrency")
    if concurrency is not None and "--workers" not in args:
        args += ["--workers", str(concurrency)]
    return args


#: The Secrets the ci values name, as if created: the tests' MLflow has no auth and ignores them.
TEST_SECRETS: Final = {
    "mlflow-credentials": {
        "MLFLOW_TRACKING_USERNAME": "sqc-tests",
        "MLFLOW_TRACKING_PASSWORD": "not-checked",
    },
    "artifact-store": {"AWS_ACCESS_KEY_ID": "sqc-tests", "AWS_SECRET_ACCESS_KEY": "not-checked"},
}


def resolve_env(
    container: Obj, config: Mapping[str, str], secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """The container's env as the kubelet sets it: ConfigMap and Secret keys resolved, an
    optional key absent, a missing required one an error (the pod would not start)."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        source = item["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            if ref["key"] in config:
                env[item["name"]] = config[ref["key"]]
            elif not ref.get("optional"):
                raise KeyError(f"{item['name']}: ConfigMap key {ref['key']} missing")
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref["key"] in secrets.get(ref["name"], {}):
                env[item["name"]] = secrets[ref["name"]][ref["key"]]
            elif not ref.get("optional"):
                raise KeyError(f"{item['name']}: needs Secret {ref['name']} key {ref['key']}")
        else:
            raise KeyError(f"{item['name']}: unsupported valueFrom {source}")
    return env


def unknown_env(env: Mapping[str, str], prefix: str, fields: set[str]) -> set[str]:
    """Variables the part would silently ignore: not PREFIX + one of its settings."""
    known = {prefix + f.upper() for f in fields} | CLIENT_ENV
    return set(env) - known


@dataclass
class Substitutions:
    """Host, port and path substitutions from the pod's world to 127.0.0.1."""

    http_port: int | None
    tracking_uri: str
    predictor_host: str | None = None
    mounts: Mapping[str, Path] | None = None
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: TEST_SECRETS)

    def path(self, value: str) -> str:
        for mount, local in (self.mounts or {}).items():
            if value == mount or value.startswith(mount + "/"):
                return str(local) + value[len(mount) :]
        return value


def substitute(
    args: list[str], env: dict[str, str], prefix: str, subs: Substitutions
) -> tuple[list[str], dict[str, str]]:
    args = list(args)
    for flag, value in (("--http_port", str(subs.http_port)), ("--predictor_host", None)):
        if flag == "--http_port" and subs.http_port is None:
            continue
        if flag in args:
            i = args.index(flag) + 1
            args[i] = value or subs.predictor_host or args[i]
    args = [subs.path(a) for a in args]
    env = {k: subs.path(v) for k, v in env.items()}
    if f"{prefix}BIND_HOST" in env:
        env[f"{prefix}BIND_HOST"] = "127.0.0.1"
    if subs.http_port is not None and "--http_port" not in args:
        env[f"{prefix}HTTP_PORT"] = str(subs.http_port)  # the pod's default port, moved
    for key in ("MLFLOW_TRACKING_URI", f"{prefix}TRACKING_URI"):
        if key in env:
            env[key] = subs.tracking_uri
    return args, env


def start(
    name: str, command: list[str], env: Mapping[str, str], port: int, log_dir: Path
) -> Server:
    """Start with exactly ``env`` (plus PATH and HOME): nothing leaks from the test's own."""
    log_path = log_dir / f"{name}-{port}.log"
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    argv = [sys.executable if c == "python" else c for c in command]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**base, **env},
            cwd=ROOT,
            start_new_session=True,
        )
    return Server(name, process, port, log_path)


def rendering(case: str) -> list[Obj]:
    """An overlay's objects (``standard``), or the chart's for ``helm-<ci values name>``."""
    if case.startswith("helm-"):
        return helm_render(values_of(CHART / "ci" / f"{case[5:]}-values.yaml"), tests=True)
    return overlay(case)


def config_of(objects: list[Obj]) -> dict[str, str]:
    data: dict[str, str] = one(objects, "ConfigMap")["data"]
    return data


def command_for(
    objects: list[Obj], component: str, subs: Substitutions
) -> tuple[list[str], dict[str, str]]:
    """The process a pod of ``component`` runs, on 127.0.0.1; fails on an unknown env name."""
    isvc = one(objects, "InferenceService")
    spec = dict(pod_specs(isvc))[component]
    (container,) = spec["containers"]
    part = "predictor" if component.endswith("predictor") else "transformer"
    parts: dict[str, tuple[str, type[BaseModel]]] = {
        "predictor": ("PREDICTOR_", PredictorSettings),
        "transformer": ("TRANSFORMER_", TransformerSettings),
    }
    prefix, settings = parts[part]
    env = resolve_env(container, config_of(objects), subs.secrets)
    unknown = unknown_env(env, prefix, set(settings.model_fields))
    assert unknown == set(), f"{component}: env the server would ignore"
    args = kserve_args(container, part, isvc, NAMESPACE)
    args, env = substitute(args, env, prefix, subs)
    command = container.get("command") or entrypoint(part)
    return [*command, *args], env


def job_command(
    objects: list[Obj], job: str, subs: Substitutions
) -> tuple[list[str], dict[str, str]]:
    """The process the CronJob ``job`` starts, on 127.0.0.1; fails on an unknown env name."""
    cronjob = one(objects, "CronJob", f"sales-quantity-classifier-{job}")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    jobs: dict[str, type[BaseModel]] = {"drift": DriftSettings, "performance": PerformanceSettings}
    settings = jobs[job]
    env = resolve_env(container, config_of(objects), subs.secrets)
    assert unknown_env(env, "MONITORING_", set(settings.model_fields)) == set()
    args, env = substitute(list(container["args"]), env, "MONITORING_", subs)
    command = container.get("command") or entrypoint("monitoring")
    return [*command, *args], env


def ask_v1_and_v2(url: str, version: str) -> None:
    """One V1 and one V2 request to the transformer at ``url``, both answered by ``version``."""
    v1 = httpx.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": [RECORD]}, timeout=30)
    assert v1.status_code == 200, v1.text
    assert v1.json()["model_version"] == version == v1.headers["x-model-version"]
    assert v1.json()["predictions"][0]["predicted_class"] in {"low", "medium", "high"}
    inputs: list[dict[str, Any]] = [
        {
            "name": k,
            "datatype": {bool: "BOOL", float: "FP64", str: "BYTES"}[type(v)],
            "shape": [1],
            "data": [v],
        }
        for k, v in RECORD.items()
    ]
    v2 = httpx.post(f"{url}/v2/models/{MODEL}/infer", json={"inputs": inputs}, timeout=30)
    assert v2.status_code == 200, v2.text
    answer = v2.json()
    assert answer["model_name"] == MODEL and answer["model_version"] == version
    assert {o["name"] for o in answer["outputs"]} == {"predicted_class", "probabilities"}
