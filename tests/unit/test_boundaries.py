"""What each server loads at run time: what its image must carry, and nothing else of ours.

``lint-imports`` checks the import graph as written; this checks what a fresh
interpreter really loads when it imports a server, third-party imports included.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.monitoring_data import feature_frame, write_parquet

# The packages each server must not load: the other server's code, training, the
# test and benchmark suites, KServe's Kubernetes client (common.serving.kserve_import);
# for the transformer, MLflow and scikit-learn, which its image does not have; for the
# predictor, MLflow, scikit-learn, skops and SciPy, which only its fallback loads (a model
# with no scorer artifact: predictor.loading).
FORBIDDEN = {
    "predictor": (
        "transformer",
        "training",
        "monitoring",
        "harness",
        "tests",
        "benchmarks",
        "mlflow",
        "sklearn",
        "skops",
        "scipy",
        "kubernetes",
    ),
    "transformer": (
        "kubernetes",
        "predictor",
        "training",
        "monitoring",
        "harness",
        "tests",
        "benchmarks",
        "mlflow",
        "sklearn",
        "scipy",
    ),
}


@pytest.mark.parametrize("server", sorted(FORBIDDEN))
def test_a_server_loads_none_of_the_packages_its_image_lacks(server: str) -> None:
    script = (
        f"import sys, {server}.__main__, {server}.model\n"
        "print(' '.join(sorted({m.partition('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(done.stdout.split())
    assert server in loaded and "common" in loaded
    assert loaded.isdisjoint(FORBIDDEN[server]), sorted(loaded & set(FORBIDDEN[server]))


def test_a_transformer_that_captures_nothing_loads_no_parquet_writer(tmp_path: Path) -> None:
    # pyarrow's Parquet writer and filesystems load with a capture store, not before
    # (pyarrow's core still comes with KServe's pandas).
    script = (
        "import sys, transformer.__main__, transformer.model\n"
        "from transformer.settings import TransformerSettings\n"
        "off = transformer.model.SalesQuantityTransformer(\n"
        "    TransformerSettings(predictor_host='127.0.0.1:1'))\n"
        "print(sorted(m for m in ('pyarrow.parquet', 'pyarrow.fs') if m in sys.modules))\n"
        "on = transformer.model.SalesQuantityTransformer(TransformerSettings(\n"
        f"    predictor_host='127.0.0.1:1', capture_uri={str(tmp_path)!r}))\n"
        "print('pyarrow.fs' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split("\n")[:2] == ["[]", "True"], done.stdout


# What the drift job of stored features leaves out, for its peak memory: pandas
# (raw records only), MLflow (the registry's baseline only), pyarrow.dataset and
# httpx (the alert webhook only). SciPy comes last, for the p-values.
DRIFT_JOB_LEAVES_OUT = ("pandas", "mlflow", "httpx", "pyarrow.dataset", "pyarrow.compute")


def test_the_drift_job_of_stored_features_loads_neither_pandas_nor_mlflow(
    tmp_path: Path,
) -> None:
    reference = write_parquet(feature_frame(2000, seed=1), tmp_path / "reference.parquet")
    current = write_parquet(feature_frame(3000, seed=2), tmp_path / "current.parquet")
    script = (
        "import sys\n"
        "import monitoring.__main__, monitoring.drift\n"
        "imported = set(sys.modules)\n"
        "from monitoring.__main__ import main\n"
        f"status = main(['drift', '--reference', {str(reference)!r}, '--current', "
        f"{str(current)!r}, '--output', {str(tmp_path / 'out')!r}])\n"
        "print(status, ' '.join(sorted(set(sys.modules))), '|', ' '.join(sorted(imported)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    status, _, imported = done.stdout.partition(" ")
    after_run, _, before_run = imported.partition(" | ")
    loaded, at_import = set(after_run.split()), set(before_run.split())
    assert status == "0", done.stderr[-2000:]
    assert (tmp_path / "out" / "drift_report.json").exists()
    assert "scipy.stats" in loaded and "scipy" not in at_import  # imported for the p-values
    assert loaded.isdisjoint(DRIFT_JOB_LEAVES_OUT), sorted(loaded & set(DRIFT_JOB_LEAVES_OUT))
