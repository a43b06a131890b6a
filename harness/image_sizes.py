"""What an image weighs and where: its size against its target, each layer, the largest packages.

``scripts/images.sh`` prints this after each build (``python -m harness.image_sizes --part
PART IMAGE``); ``tests/images/test_sizes.py`` checks :data:`TARGETS_MB` with the same
numbers. Standard library only, and buildah: it runs before any virtualenv exists.

Sizes are in decimal MB of the uncompressed layers, as ``buildah images`` reports them: a
layer's size is containers-storage's ``diff-size`` of it (read from the storage's layer
list, ``<GraphRoot>/<driver>-layers/layers.json``: buildah has no command that prints it),
matched to the image's ``rootfs.diff_ids`` and to the history entry that made it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["BUDGETS_MB", "TARGETS_MB", "Layer", "image_size", "layers", "main", "site_packages"]

#: Issue 23's size target of each image (MB), by part; the predictor's -sklearn variant has
#: none (it keeps what the default leaves out).
TARGETS_MB: Final = {"predictor": 350, "transformer": 350, "monitoring": 400}
#: What tests/images/test_sizes.py holds each image to (MB): its target where it is met,
#: else what it weighs now and a little room, so that it cannot grow unnoticed while the
#: target is out of reach (docs/images.md, "Sizes", says why each such one is).
BUDGETS_MB: Final = {
    "predictor": 350,
    "predictor-sklearn": 500,
    "transformer": 400,
    "monitoring": 500,
}

MB: Final = 1_000_000


def _buildah(*args: str) -> str:
    driver = os.environ.get("STORAGE_DRIVER")
    command = ["buildah", *(["--storage-driver", driver] if driver else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


@dataclass(frozen=True)
class Layer:
    """One layer of an image: its uncompressed size and the step that made it."""

    size: int  # bytes
    created_by: str


def _inspect(image: str) -> dict[str, Any]:
    inspected: dict[str, Any] = json.loads(_buildah("inspect", "--type", "image", image))
    return inspected


def _diff_sizes() -> dict[str, int]:
    """Uncompressed size of every layer in buildah's storage, by its diff digest."""
    info = json.loads(_buildah("info"))
    store = info["store"]
    root = Path(store["GraphRoot"])
    driver = os.environ.get("STORAGE_DRIVER") or store["GraphDriverName"]
    sizes: dict[str, int] = {}
    for name in ("layers.json", "volatile-layers.json"):
        path = root / f"{driver}-layers" / name
        if path.is_file():
            for layer in json.loads(path.read_text() or "[]"):
                if layer.get("diff-digest") and "diff-size" in layer:
                    sizes[layer["diff-digest"]] = int(layer["diff-size"])
    return sizes


def _step(created_by: str) -> str:
    """A history entry's command, without the shell prefix buildah records."""
    for prefix in ("/bin/sh -c #(nop) ", "/bin/sh -c "):
        if created_by.startswith(prefix):
            return created_by[len(prefix) :]
    return created_by


def layers(image: str, base: str | None = None) -> list[Layer]:
    """The layers of ``image``, base first, each with its size and the step that made it
    (``base``'s own layers named as that image's)."""
    inspected = _inspect(image)
    oci = inspected["OCIv1"]
    diff_ids: list[str] = oci["rootfs"]["diff_ids"]
    steps = [h for h in oci.get("history", []) if not h.get("empty_layer")]
    if len(steps) != len(diff_ids):  # no usable history: name the layers by position
        steps = [{"created_by": f"layer {i + 1}"} for i in range(len(diff_ids))]
    sizes = _diff_sizes()
    missing = [d for d in diff_ids if d not in sizes]
    if missing:
        raise RuntimeError(f"{image}: no size in buildah's storage for layers {missing}")
    in_base = set(_inspect(base)["OCIv1"]["rootfs"]["diff_ids"]) if base else set()
    return [
        Layer(
            sizes[d],
            f"the base image, {base}"
            if d in in_base
            else " ".join(_step(s.get("created_by", "")).split()),
        )
        for d, s in zip(diff_ids, steps, strict=True)
    ]


def image_size(image: str) -> int:
    """The size of ``image`` in bytes: the sum of its layers, as ``buildah images`` shows."""
    return sum(layer.size for layer in layers(image))


def site_packages(image: str, top: int = 15) -> list[tuple[int, str]]:
    """The ``top`` largest entries of the image's virtualenv site-packages, as (bytes, name)."""
    container = _buildah("from", "--pull-never", "--quiet", image).strip()
    try:
        root = Path(_buildah("mount", container).strip())
        found = sorted((root / "opt" / "venv" / "lib").glob("python3*/site-packages"))
        if not found:
            return []
        sizes = [(_tree_size(entry), entry.name) for entry in found[0].iterdir()]
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, timeout=120, check=False)
    return sorted(sizes, reverse=True)[:top]


def _tree_size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for directory, _dirs, files in os.walk(path):
        total += sum(os.lstat(os.path.join(directory, f)).st_size for f in files)
    return total


def report(image: str, part: str | None, base: str | None = None) -> str:
    """The text ``scripts/images.sh`` prints for ``image``."""
    found = layers(image, base)
    total = sum(layer.size for layer in found)
    target, budget = TARGETS_MB.get(part or ""), BUDGETS_MB.get(part or "")
    verdict = []
    if target is not None:
        verdict.append(f"target {target} MB: {'met' if total <= target * MB else 'not met'}")
    if budget is not None and budget != target:
        verdict.append(f"budget {budget} MB: {'within' if total <= budget * MB else 'OVER'}")
    verdict_text = f" ({'; '.join(verdict)})" if verdict else ""
    lines = [f"image-sizes: {image}: {total / MB:.0f} MB{verdict_text}", "  layer      MB  step"]
    for number, layer in enumerate(found, start=1):
        lines.append(f"  {number:5d} {layer.size / MB:7.1f}  {layer.created_by[:110]}")
    lines.append("  largest in /opt/venv site-packages (MB):")
    lines.append(
        "    " + ", ".join(f"{name} {size / MB:.1f}" for size, name in site_packages(image))
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report of each image named; 0, or 1 if buildah cannot say."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.image_sizes", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("images", nargs="+", help="image names, e.g. localhost/...:latest")
    parser.add_argument("--part", help="the image's part, for its target (predictor, ...)")
    parser.add_argument("--base", help="the base image the image was built on")
    args = parser.parse_args(argv)
    try:
        for image in args.images:
            print(report(image, args.part, args.base))
    except RuntimeError as exc:
        print(f"image-sizes: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
