"""The tier of a test is its directory (``tests/conftest.py``), whatever markers it forgets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import TIERS

ROOT = Path(__file__).resolve().parents[2]
FAST = " and ".join(f"not {tier}" for tier in TIERS)


def _collected(project: Path, marks: str) -> list[str]:
    """The test ids ``pytest -m marks`` collects in ``project``, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + ["-m", marks],
        cwd=project,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_ADDOPTS": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in (0, 5), done.stdout + done.stderr  # 5: all deselected
    return sorted(line for line in done.stdout.splitlines() if "::" in line)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our tests/conftest.py and markers, and one unmarked test per directory."""
    root = tmp_path_factory.mktemp("project")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    markers = "".join(f"\n    {marker}" for marker in config["ini_options"]["markers"])
    (root / "pytest.ini").write_text(f"[pytest]\naddopts = --strict-markers\nmarkers ={markers}\n")
    (root / "tests").mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", root / "tests" / "conftest.py")
    for directory in ("unit", *TIERS):
        (root / "tests" / directory).mkdir()
        test = root / "tests" / directory / f"test_in_{directory}.py"
        test.write_text("def test_forgets_its_marker():\n    pass\n")
    return root


def test_an_unmarked_test_in_a_tier_directory_is_left_out_of_the_fast_tier(project: Path) -> None:
    assert _collected(project, FAST) == ["tests/unit/test_in_unit.py::test_forgets_its_marker"]


@pytest.mark.parametrize("tier", TIERS)
def test_an_unmarked_test_in_a_tier_directory_carries_the_tier_marker(
    project: Path, tier: str
) -> None:
    assert _collected(project, tier) == [f"tests/{tier}/test_in_{tier}.py::test_forgets_its_marker"]


def test_every_directory_of_tests_is_the_unit_tier_or_a_marked_tier() -> None:
    directories = {
        path.name for path in (ROOT / "tests").iterdir() if path.is_dir() and path.name[0] != "_"
    }
    assert directories == {"unit", *TIERS}  # a new tier: add it to TIERS and to the markers
