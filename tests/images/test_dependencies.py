"""Each server image carries what its server imports, and nothing it does not.

The locks leave out the dependencies nothing imports (``requirements/exclude/``) and
``scripts/slim-venv.sh`` deletes unused parts of packages and their byte code. So that a
missing module fails here and not in a cluster, the predictor and the transformer are
served from their images with every module they import recorded (``sys.modules``, written
to ``/data`` twice a second by a wrapper that then runs ``python -m PART`` as the image
does), after V1, V2, a refused request, metrics, metadata and readiness went through both,
with the capture store on. Then, in a fresh container of each image:

- every distribution installed in the image is one whose files the servers imported, or
  is in :data:`NEEDED_UNIMPORTED` with the reason it stays;
- every module the servers imported from the virtualenv or ``/app`` has its byte code
  (only trees nothing imports lose theirs: a start never compiles);
- every module of the part's own code and of ``common/`` imports, except, in the
  predictor's default variant, on the scikit-learn path it does not have.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.servers import free_port
from tests.images.buildah import container, entry_module, start
from tests.images.conftest import MODEL, SERVING_PREDICTOR, Served, _wait_ready, writable_dir
from tests.integration.conftest import Registry
from tests.unit.records import VALID as RECORD
from transformer.protocol import RAW_DATATYPES

#: Installed, needed, yet not imported by a server here; and why each stays.
NEEDED_UNIMPORTED = {
    # httpx's transport and certificates: KServe imports httpx, which loads these when a
    # client of it first sends (KServe's InferenceRESTClient); the transformer never sends
    # with httpx (the predictor does: its registry client, whose https needs certifi).
    "h11": "httpx",
    "httpcore": "httpx",
    # Time zone data: pandas and zoneinfo read it where the system has none.
    "tzdata": "pandas",
    "certifi": "httpx",
}

#: Records ``sys.modules`` (name -> file) to /data/modules.json twice a second, then runs
#: ``python -m PART ARGS...`` as the image's entry point would.
RECORDER = """
import json, os, runpy, sys, threading, time

def record():
    while True:
        time.sleep(0.5)
        modules = {}
        for name, module in list(sys.modules.items()):
            try:
                modules[name] = getattr(module, "__file__", None)
            except Exception:
                modules[name] = None
        with open("/data/.modules.json", "w") as out:
            json.dump(modules, out)
        os.replace("/data/.modules.json", "/data/modules.json")

threading.Thread(target=record, daemon=True).start()
part = sys.argv[1]
sys.argv = [part, *sys.argv[2:]]
runpy.run_module(part, run_name="__main__", alter_sys=True)
"""

#: Run in a fresh container with the recording under /data: which distributions the
#: recorded modules came from, which of those modules have no byte code, and which modules
#: of the packages named in argv fail to import (and why).
ANALYSIS = """
import importlib, importlib.metadata, importlib.util, json, os, pkgutil, sys

recorded = {}
if os.path.exists("/data/modules.json"):
    recorded = json.load(open("/data/modules.json"))
owner, installed = {}, set()
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    installed.add(name)
    for file in dist.files or ():
        owner[os.path.realpath(dist.locate_file(file))] = name
reached, no_bytecode = set(), []
for name, path in recorded.items():
    if not path:
        continue
    real = os.path.realpath(path)
    if real in owner:
        reached.add(owner[real])
    if real.endswith(".py") and real.startswith(("/opt/venv/", "/app/")):
        if not os.path.exists(importlib.util.cache_from_source(real)):
            no_bytecode.append(name)
failed = {}
for package in sys.argv[1:]:
    def fail(name, package=package):
        failed[name] = "cannot walk"
    for info in pkgutil.walk_packages([f"/app/{package}"], f"{package}.", onerror=fail):
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed[info.name] = [type(exc).__name__, getattr(exc, "name", None), str(exc)]
print(json.dumps({
    "installed": sorted(installed), "reached": sorted(reached),
    "no_bytecode": sorted(no_bytecode), "failed": failed, "recorded": len(recorded),
}))
"""


@dataclass
class Recorded:
    """What a server imported while serving, from its image, in its ``/data``."""

    image: str
    data: Path


@contextlib.contextmanager
def _recording(
    image: str, args: list[str], env: list[str], port: int, data: Path, log: Path
) -> Iterator[Served]:
    """Serve ``image``'s part with ``args``, recording its imports to ``data``."""
    part = entry_module(image_part(image))
    argv = ["python", "-c", RECORDER, part, *args, "--http_port", str(port)]
    with container(image) as ctr:
        process = start(ctr.command(argv, volumes=[f"{data}:/data"], env=env), log)
        served = Served(ctr, process, port, 0.0, (f"{data}:/data",))
        try:
            _wait_ready(served, f"/v2/models/{MODEL}/ready")
            yield served
        finally:
            process.stop()


def image_part(image: str) -> str:
    """``...-predictor:TAG-sklearn`` -> ``predictor-sklearn``."""
    part = image.rsplit("/", 1)[1].split(":")[0].removeprefix("sales-quantity-classifier-")
    return f"{part}-sklearn" if image.endswith("-sklearn") else part


@pytest.fixture(scope="module")
def recorded(
    images: dict[str, str],
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
    log_dir: Path,
) -> dict[str, Recorded]:
    """The serving predictor image and the transformer's, each served with its imports
    recorded; part -> where."""
    tmp = tmp_path_factory.mktemp("recorded")
    p_data, t_data = writable_dir(tmp, "predictor"), writable_dir(tmp, "transformer")
    p_port, t_port = free_port(), free_port()
    predictor = images[SERVING_PREDICTOR]
    with (
        _recording(
            predictor,
            ["--model_name", MODEL],
            [f"PREDICTOR_TRACKING_URI={registry.tracking_uri}"],
            p_port,
            p_data,
            log_dir / "recorded-predictor.log",
        ) as p,
        _recording(
            images["transformer"],
            ["--model_name", MODEL, "--predictor_host", f"127.0.0.1:{p_port}"]
            + ["--capture_uri", "/data/capture", "--capture_flush_seconds", "1"],
            [],
            t_port,
            t_data,
            log_dir / "recorded-transformer.log",
        ) as t,
    ):
        _exercise(p, t)
        # The capture store has written its file, and the recorders have written since.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list((t_data / "capture").rglob("*.parquet")):
            time.sleep(0.5)
        assert list((t_data / "capture").rglob("*.parquet")), "the capture store wrote nothing"
        time.sleep(1.5)
    return {
        SERVING_PREDICTOR: Recorded(predictor, p_data),
        "transformer": Recorded(images["transformer"], t_data),
    }


def _exercise(predictor: Served, transformer: Served) -> None:
    """V2 and V1, a refused request, metrics, metadata and readiness, through both."""
    v2 = {
        "inputs": [
            {"name": name, "datatype": datatype, "shape": [1], "data": [RECORD[name]]}
            for name, datatype in RAW_DATATYPES.items()
        ]
    }
    with httpx.Client(base_url=transformer.url, timeout=30) as client:
        assert client.post(f"/v2/models/{MODEL}/infer", json=v2).status_code == 200
        v1 = client.post(f"/v1/models/{MODEL}:predict", json={"instances": [RECORD] * 3})
        assert v1.status_code == 200, v1.text
        bad = {"instances": [{**RECORD, "discount_pct": 1.7}]}
        assert client.post(f"/v1/models/{MODEL}:predict", json=bad).status_code == 400
    for served in (predictor, transformer):
        for path in ("/metrics", f"/v2/models/{MODEL}", "/v2/health/ready"):
            answer = httpx.get(f"{served.url}{path}", timeout=30)
            assert answer.status_code == 200, (path, answer.text)


def _analyse(image: str, data: Path, packages: list[str]) -> dict[str, Any]:
    with container(image) as ctr:
        done = ctr.run(
            ["python", "-c", ANALYSIS, *packages], volumes=[f"{data}:/data"], timeout=300
        )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("part", [SERVING_PREDICTOR, "transformer"])
def test_a_server_image_carries_what_its_server_imports_and_nothing_else(
    recorded: dict[str, Recorded], part: str
) -> None:
    where = recorded[part]
    found = _analyse(where.image, where.data, [entry_module(part), "common"])
    assert found["recorded"] > 500, "the recording holds too few modules"
    failed = found["failed"]
    if part == "predictor":  # the default variant has no scikit-learn path, by design
        failed = {n: w for n, w in failed.items() if n != "predictor.sklearn_predict"}
    assert failed == {}, failed
    assert found["no_bytecode"] == [], "imported without byte code (slim-venv.sh dropped it)"
    unimported = set(found["installed"]) - set(found["reached"])
    assert unimported <= set(NEEDED_UNIMPORTED), (
        "installed but never imported while serving (leave it out: requirements/exclude/), "
        f"or needed and not in NEEDED_UNIMPORTED: {sorted(unimported)}"
    )


def test_every_module_of_the_default_predictor_imports_but_the_scikit_learn_path(
    images: dict[str, str], tmp_path: Path
) -> None:
    data = writable_dir(tmp_path, "data")
    found = _analyse(images["predictor"], data, ["predictor", "common"])
    missing = {name: why[1] for name, why in found["failed"].items()}
    # Only what needs scikit-learn, skops or SciPy; and nothing of common/.
    assert all(why[0] == "ModuleNotFoundError" for why in found["failed"].values()), found
    assert {str(m).split(".")[0] for m in missing.values()} <= {"sklearn", "skops", "scipy"}
    assert not [name for name in missing if name.startswith("common.")]
    assert "predictor.settings" not in missing and "predictor.errors" not in missing
