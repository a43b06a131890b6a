"""The lock files the images install from agree with pyproject.toml's pins.

Each image installs ``requirements/<part>.txt`` (written by ``make lock``) with pip's
``--require-hashes``. A pin changed in pyproject.toml without ``make lock`` would build an
image with the old version; this catches it offline, without resolving anything. The same
for ``requirements/exclude/<part>.txt``, the dependencies ``make lock`` leaves out of a lock.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# predictor-sklearn: the predictor image's -sklearn variant (docs/images.md).
PARTS = ("predictor", "predictor-sklearn", "transformer", "monitoring")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def _pins(extra: str) -> dict[str, str]:
    """Exact pins of the core and of ``extra``, following the extras of this project it names."""
    project = _project()
    name = canonicalize_name(str(project["name"]))
    extras: dict[str, list[str]] = project["optional-dependencies"]  # type: ignore[assignment]
    core: list[str] = project["dependencies"]  # type: ignore[assignment]
    pins: dict[str, str] = {}

    def collect(specs: list[str]) -> None:
        for spec in specs:
            req = Requirement(spec)
            if canonicalize_name(req.name) == name:
                for named in req.extras:
                    collect(extras[named])
                continue
            pins.update(
                {
                    canonicalize_name(req.name): s.version
                    for s in req.specifier
                    if s.operator == "=="
                }
            )

    collect(core + extras[extra])
    return pins


def _locked(part: str) -> tuple[dict[str, str], str]:
    text = (ROOT / "requirements" / f"{part}.txt").read_text()
    locked = {
        str(canonicalize_name(m.group(1))): m.group(2)
        for line in text.splitlines()
        if (m := _PIN.match(line))
    }
    return locked, text


@pytest.mark.parametrize("part", PARTS)
def test_lock_file_has_every_pin_of_the_extra_at_its_version(part: str) -> None:
    locked, _ = _locked(part)
    pins = _pins(part)
    assert pins, f"no pins found for the {part} extra"
    wrong = {n: (v, locked.get(n)) for n, v in pins.items() if locked.get(n) != v}
    assert not wrong, f"requirements/{part}.txt is stale (pyproject, lock): {wrong}; run make lock"


@pytest.mark.parametrize("part", PARTS)
def test_every_locked_requirement_is_exact_and_hashed(part: str) -> None:
    _, text = _locked(part)
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip())
    assert entries
    for entry in entries:
        assert _PIN.match(entry), f"not an exact pin in requirements/{part}.txt: {entry[:60]}"
        assert "--hash=sha256:" in entry, f"no hash in requirements/{part}.txt: {entry[:60]}"
    assert "file:" not in text and "--index-url" not in text and "--find-links" not in text


def test_transformer_lock_has_no_mlflow_or_scikit_learn() -> None:
    locked, _ = _locked("transformer")
    assert not {"mlflow", "mlflow-skinny", "scikit-learn", "scipy"} & locked.keys()


def _excluded(part: str) -> set[str]:
    """The names ``requirements/exclude/<part>.txt`` leaves out, following its ``-r`` files."""
    names: set[str] = set()
    path = ROOT / "requirements" / "exclude" / f"{part}.txt"
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= _excluded(line[3:].strip().removesuffix(".txt"))
        elif line:
            names.add(str(canonicalize_name(Requirement(line).name)))
    return names


@pytest.mark.parametrize("part", PARTS)
def test_lock_file_leaves_out_every_package_its_exclude_file_names(part: str) -> None:
    locked, _ = _locked(part)
    excluded = _excluded(part)
    assert excluded, f"requirements/exclude/{part}.txt names nothing"
    kept = excluded & locked.keys()
    assert not kept, f"requirements/{part}.txt still has {sorted(kept)}; run make lock"
    assert not excluded & set(_pins(part)), "an excluded package is pinned in the extra itself"


def test_default_predictor_lock_has_no_scikit_learn_skops_or_scipy() -> None:
    locked, _ = _locked("predictor")
    assert not {"scikit-learn", "skops", "scipy", "joblib", "threadpoolctl"} & locked.keys()
    sklearn, _ = _locked("predictor-sklearn")
    assert {"scikit-learn", "skops", "scipy"} <= sklearn.keys()
    # The variant adds to the default lock and changes none of its versions.
    assert {n: sklearn.get(n) for n in locked} == locked


def test_no_server_lock_carries_what_kserve_declares_but_never_imports() -> None:
    for part in ("predictor", "predictor-sklearn", "transformer"):
        locked, _ = _locked(part)
        unused = {"pillow", "grpcio-tools", "setuptools", "pyjwt", "cryptography", "pyasn1"}
        assert not unused & locked.keys(), part
