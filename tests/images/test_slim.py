"""What ``scripts/slim-venv.sh`` removed stays removed, in every image.

Each check reads the image's root filesystem from the host (``buildah mount``); the images'
servers and jobs are run by the other tests of this tier, after these removals.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.images.buildah import IMAGES, container


def _site_packages(root: Path) -> Path:
    found = sorted((root / "opt" / "venv" / "lib").glob("python3*/site-packages"))
    assert len(found) == 1, found
    return found[0]


def has_symbol_table(path: Path) -> bool:
    """Whether the ELF file at ``path`` (64-bit, little-endian) has a ``.symtab`` section."""
    with path.open("rb") as elf:
        header = elf.read(64)
        assert header[:4] == b"\x7fELF" and header[4] == 2 and header[5] == 1, path
        (shoff,) = struct.unpack_from("<Q", header, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", header, 0x3A)
        elf.seek(shoff)
        table = elf.read(shentsize * shnum)
        sections = [struct.unpack_from("<IIQQQQ", table, i * shentsize) for i in range(shnum)]
        names_offset, names_size = sections[shstrndx][4], sections[shstrndx][5]
        elf.seek(names_offset)
        names = elf.read(names_size)
    return any(names[s[0] :].split(b"\0", 1)[0] == b".symtab" for s in sections)


@pytest.mark.parametrize("part", IMAGES)
def test_no_installer_headers_sources_stubs_or_test_suites_in_the_virtualenv(
    images: dict[str, str], part: str
) -> None:
    with container(images[part]) as ctr:
        site = _site_packages(ctr.rootfs())
        installers = [
            p.name
            for p in site.iterdir()
            if p.name.split("-")[0]
            in {"pip", "setuptools", "wheel", "_distutils_hack", "pkg_resources"}
        ]
        assert installers == []
        left = [
            str(p.relative_to(site))
            for pattern in ("*.h", "*.hpp", "*.c", "*.pyx", "*.pxd", "*.pxi", "*.pyi")
            for p in site.rglob(pattern)
        ]
        left += [str(p.relative_to(site)) for p in site.rglob("include") if p.is_dir()]
        left += [str(p.relative_to(site)) for p in site.rglob("tests") if p.is_dir()]
        assert left == []
        # Shared objects are stripped, but those auditwheel vendored (*.libs/).
        unstripped = [
            str(p.relative_to(site))
            for p in site.rglob("*.so*")
            if p.is_file()
            and not p.is_symlink()
            and ".libs" not in p.parent.name
            and has_symbol_table(p)
        ]
        assert unstripped == []


def test_the_kubernetes_client_is_only_where_the_rollout_cli_runs(
    images: dict[str, str],
) -> None:
    # The servers import KServe's model server without its Kubernetes client
    # (common/serving/kserve_import.py): their locks leave it out (requirements/exclude).
    for part in ("predictor", "predictor-sklearn", "transformer"):
        with container(images[part]) as ctr:
            assert not (_site_packages(ctr.rootfs()) / "kubernetes").exists(), part
    # The monitoring image runs the rollout Job: of the generated API and model classes it
    # keeps CustomObjectsApi and what it imports, and no asyncio copy.
    with container(images["monitoring"]) as ctr:
        kubernetes = _site_packages(ctr.rootfs()) / "kubernetes"
        assert not (kubernetes / "aio").exists()
        api = kubernetes / "client" / "api"
        assert {p.name for p in api.glob("*.py")} == {"__init__.py", "custom_objects_api.py"}
        # Of the ~800 models, those the API's module imports (the in-image test of the
        # monitoring image makes one).
        models = {p.stem for p in (kubernetes / "client" / "models").glob("*.py")}
        assert "v1_delete_options" in models and len(models) < 30, sorted(models)
        for package in (api, kubernetes / "client" / "models"):
            byte_code = {p.name.split(".")[0] for p in (package / "__pycache__").iterdir()}
            assert byte_code == {p.stem for p in package.glob("*.py")}, package.name
        assert (kubernetes / "client" / "api_client.py").is_file()


def test_pyarrow_has_no_flight_and_one_copy_of_each_library(images: dict[str, str]) -> None:
    for part in ("transformer", "monitoring"):
        with container(images[part]) as ctr:
            pyarrow = _site_packages(ctr.rootfs()) / "pyarrow"
            assert not list(pyarrow.glob("*flight*")), part
            python = sorted(pyarrow.glob("libarrow_python.so*"))
            assert [p.is_symlink() for p in python] == [True, True, False], python
            assert (pyarrow / "libparquet.so.2500").is_file() or list(
                pyarrow.glob("libparquet.so.*")
            )
