"""``common.serving.kserve_import``: KServe's server without its Kubernetes client SDK.

Each check runs in a fresh interpreter: what a process imports depends on what it
imported before, and this test process has imported KServe in full already.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

from common.serving.kserve_import import SERVER_NAMES

#: What a server must not load: KServe's client SDK and what only it needs.
CLIENT_SDK = ("kubernetes", "kubernetes_validate", "google.auth", "cryptography", "oauthlib")


def _fresh(script: str) -> list[str]:
    """The lines ``script`` prints in a new interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split("\n")


def _kserve_init() -> dict[str, str]:
    """Each name ``kserve/__init__.py`` imports, and the module it imports it from."""
    spec = importlib.util.find_spec("kserve")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return {
        alias.asname or alias.name: "kserve" + "." * (node.level > 0) + (node.module or "")
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_each_server_name_comes_from_the_module_kserves_init_takes_it_from() -> None:
    init = _kserve_init()
    for name, module in SERVER_NAMES.items():
        assert init.get(name) == module, (name, module, init.get(name))


def test_a_server_process_imports_kserves_server_but_not_its_client_sdk() -> None:
    # What `python -m transformer` imports before it serves: its entry point (which
    # defers KServe's __init__), the model server, the model.
    lines = _fresh(
        "import sys\n"
        "import transformer.__main__, common.serving.model_server, transformer.model\n"
        "import kserve, kserve.model, kserve.protocol.infer_type as infer_type\n"
        "print(' '.join(sorted(sys.modules)))\n"
        "print(kserve.Model is kserve.model.Model, kserve.InferRequest is infer_type.InferRequest)"
    )
    loaded = set(lines[0].split())
    assert {"kserve.model_server", "kserve.protocol.dataplane"} <= loaded
    assert not {m for m in loaded if m.startswith(CLIENT_SDK)}, sorted(loaded)
    assert "kserve.api.kserve_client" not in loaded
    assert lines[1] == "True True"


def test_a_client_name_still_works_it_runs_kserves_own_init_first() -> None:
    lines = _fresh(
        "import sys\n"
        "import common.serving.launch\n"
        "import kserve\n"
        "print('kubernetes' in sys.modules)\n"
        "from kserve import KServeClient, V1beta1InferenceService\n"
        "print('kubernetes' in sys.modules, KServeClient.__module__, kserve.Model.__name__)"
    )
    assert lines[0] == "False"
    assert lines[1] == "True kserve.api.kserve_client Model"


def test_a_scan_of_every_module_for_a_name_does_not_run_kserves_init() -> None:
    # pickle's and skops' whichmodule() ask every module in sys.modules for a name.
    lines = _fresh(
        "import sys, pickle\n"
        "import common.serving.launch\n"
        "import kserve.model\n"
        "print(getattr(sys.modules['kserve'], 'airy', None), hasattr(kserve, 'protocol'))\n"
        "print('kubernetes' in sys.modules)"
    )
    assert lines == ["None True", "False", ""]


def test_kserve_imported_in_full_before_stays_as_it_is() -> None:
    lines = _fresh(
        "import kserve\n"
        "from common.serving.kserve_import import defer_kserve_package_init\n"
        "print(defer_kserve_package_init(), type(kserve).__name__)"
    )
    assert lines[0] == "False module"
