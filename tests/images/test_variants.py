"""The predictor image's two variants (docs/images.md): the default, with no scikit-learn,
skops or SciPy, which serves a model from the NumPy scorer artifact logged beside it, and
-sklearn, which also loads and checks the model's skops file.

Training logs that artifact, and the predictor imports scikit-learn, skops and SciPy only
on its fallback path (a model without it, or ``--compile_model false``): the serving
fixtures run the default variant (``tests.images.conftest.SERVING_PREDICTOR``), and the
registry's model served by it answers as the -sklearn variant scoring with scikit-learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from harness.servers import free_port
from tests.images.buildah import container, image_config
from tests.images.conftest import MODEL, Served, mounts, serve_command
from tests.integration.conftest import Registry
from tests.unit.records import VALID, record
from transformer.features import compute_features
from transformer.protocol import to_predictor_v2
from transformer.schema import validate_records

#: What only the scikit-learn path needs; the default variant has none of it.
SCIKIT_LEARN = ["sklearn", "skops", "scipy", "joblib", "threadpoolctl"]


def _found(image: str, modules: list[str]) -> dict[str, bool]:
    """Which of ``modules`` the image's Python finds (without importing them)."""
    code = (
        "import importlib.util, json\n"
        "def found(name):\n"
        "    try:\n"
        "        return importlib.util.find_spec(name) is not None\n"
        "    except ModuleNotFoundError:\n"
        "        return False\n"
        f"print(json.dumps({{m: found(m) for m in {modules!r}}}))\n"
    )
    with container(image) as ctr:
        done = ctr.python(code)
    assert done.returncode == 0, done.stderr
    result: dict[str, bool] = json.loads(done.stdout)
    return result


def test_the_default_predictor_has_no_scikit_learn_skops_or_scipy_and_the_variant_has(
    images: dict[str, str],
) -> None:
    serving = ["predictor.model", "kserve", "numpy", "pandas", "httpx", "yaml"]
    # The default reads the registry over REST (predictor/registry.py): no MLflow either.
    slim = _found(images["predictor"], [*SCIKIT_LEARN, "mlflow", *serving])
    assert [m for m, found in slim.items() if found] == serving
    variant = _found(images["predictor-sklearn"], [*SCIKIT_LEARN, "mlflow", *serving])
    assert all(variant.values()), variant
    # One image name, two tags: the variant's is the default's with the suffix -sklearn.
    assert images["predictor-sklearn"] == f"{images['predictor']}-sklearn"
    assert image_config(images["predictor-sklearn"])["Entrypoint"] == ["python", "-m", "predictor"]


def _run_to_exit(image: str, args: list[str], env: list[str]) -> tuple[int, str]:
    """Run ``image``'s entry point with ``args`` until it exits; (exit code, its output)."""
    entrypoint = image_config(image)["Entrypoint"]
    argv = [*entrypoint, "--model_name", MODEL, "--http_port", str(free_port()), *args]
    with container(image) as ctr:
        done = ctr.run(argv, env=env, timeout=240)
    return done.returncode, done.stdout + done.stderr


def _assert_refused_naming_the_variant(code: int, output: str) -> None:
    assert code == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    refusals = [
        json.loads(line)["message"]
        for line in output.splitlines()
        if line.startswith("{") and "cannot serve" in line
    ]
    assert len(refusals) == 1, output[-3000:]
    assert "which this image does not have" in refusals[0]
    assert "-sklearn variant (tag suffix -sklearn)" in refusals[0]


def test_the_default_predictor_refuses_the_scikit_learn_path_by_naming_the_variant(
    images: dict[str, str], registry: Registry
) -> None:
    # --compile_model false: scikit-learn scores, which this variant does not have. It
    # exits with one clear line (and code 1, so the pod's restarts show it), not a trace.
    code, output = _run_to_exit(
        images["predictor"],
        ["--compile_model", "false"],
        [f"PREDICTOR_TRACKING_URI={registry.tracking_uri}"],
    )
    _assert_refused_naming_the_variant(code, output)


def test_the_default_predictor_serves_the_registry_model_only_with_its_scorer_artifact(
    images: dict[str, str],
    registry: Registry,
    predictor_image_server: Served,
    tmp_path: Path,
    log_dir: Path,
) -> None:
    env = [f"PREDICTOR_TRACKING_URI={registry.tracking_uri}"]
    features = compute_features(validate_records([VALID, record(store_id="S002")]))
    content, headers = to_predictor_v2(features, "variants", binary=False)
    path = f"/v2/models/{MODEL}/infer"
    served = httpx.post(
        f"{predictor_image_server.url}{path}", content=content, headers=headers, timeout=30
    )
    metrics = httpx.get(f"{predictor_image_server.url}/metrics", timeout=30).text
    assert served.status_code == 200, served.text
    assert 'scorer="numpy"' in metrics  # the NumPy scorer, without scikit-learn
    # The reference: the -sklearn variant, scoring with scikit-learn itself.
    port = free_port()
    entrypoint = image_config(images["predictor-sklearn"])["Entrypoint"]
    argv = [*entrypoint, "--model_name", MODEL, "--http_port", str(port)]
    argv += ["--compile_model", "false"]
    with serve_command(
        images["predictor-sklearn"],
        argv,
        env,
        port,
        mounts(tmp_path),
        log_dir / "sklearn-predictor.log",
    ) as reference_server:
        reference = httpx.post(
            f"{reference_server.url}{path}", content=content, headers=headers, timeout=30
        )
        reference_metrics = httpx.get(f"{reference_server.url}/metrics", timeout=30).text
    assert reference.status_code == 200, reference.text
    assert 'scorer="scikit-learn"' in reference_metrics
    assert served.json()["outputs"] == reference.json()["outputs"]
    assert served.json()["model_version"] == registry.version


@pytest.mark.parametrize("variant", ["predictor", "predictor-sklearn"])
def test_both_predictor_variants_start_their_entry_point_and_name_their_flags(
    images: dict[str, str], variant: str
) -> None:
    code, output = _run_to_exit(images[variant], ["--help"], [])
    assert code == 0, output[-3000:]
    assert "--compile_model" in output and "--tracking_uri" in output
