"""What each server loads at run time: what its image must carry, and nothing else of ours.

``lint-imports`` checks the import graph as written; this checks what a fresh
interpreter really loads when it imports a server, third-party imports included.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# The packages each server must not load: the other server's code, training, the
# test and benchmark suites; and for the transformer, MLflow and scikit-learn,
# which its image does not have.
FORBIDDEN = {
    "predictor": ("transformer", "training", "monitoring", "harness", "tests", "benchmarks"),
    "transformer": (
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
