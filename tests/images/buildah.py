"""Build the images and run commands and servers inside them, with buildah.

No Docker engine here: ``scripts/images.sh`` builds, and ``buildah run --isolation chroot``
runs a command in a working container made from an image, on the host's network (so a
server in it listens on 127.0.0.1 and reaches MLflow there).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
#: One image per part, each from its Dockerfile.
PARTS = ("predictor", "transformer", "monitoring")
#: Every image scripts/images.sh builds: the parts', and the predictor's -sklearn variant
#: (the predictor image's tag with the suffix -sklearn; docs/images.md).
IMAGES = ("predictor", "predictor-sklearn", "transformer", "monitoring")
# Paths a run may write: the mounted writable ones, and what buildah itself mounts or
# creates for a run (kernel file systems, /etc/hosts and /etc/resolv.conf).
RUNTIME_PATHS = ("tmp", "data", "proc", "sys", "dev", "run", "etc/hosts", "etc/resolv.conf")


def buildah(*args: str) -> list[str]:
    """The buildah command line, with the storage driver that scripts/images.sh uses."""
    driver = os.environ.get("STORAGE_DRIVER")
    return ["buildah", *(["--storage-driver", driver] if driver else []), *args]


def check_output(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        buildah(*args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def build_images() -> dict[str, str]:
    """Run ``scripts/images.sh`` (cached layers make a rebuild cheap); each of :data:`IMAGES`
    -> its image name."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "images.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/images.sh failed:\n{done.stderr[-6000:]}")
    built: dict[str, str] = {}
    for name in done.stdout.split():
        part = name.rsplit("/", 1)[1].split(":")[0].removeprefix("sales-quantity-classifier-")
        variant = name.rsplit(":", 1)[1].rsplit("-", 1)[-1]
        built[f"{part}-{variant}" if variant == "sklearn" else part] = name
    assert set(built) == set(IMAGES), f"scripts/images.sh built {sorted(built)}"
    return built


def entry_module(image: str) -> str:
    """The module an image of :data:`IMAGES` runs (its part's): ``predictor-sklearn`` ->
    ``predictor``."""
    return image.split("-")[0]


def image_config(image: str) -> dict[str, Any]:
    """The OCI config of ``image``: ``User``, ``Env``, ``Entrypoint``, ``Labels``, ..."""
    config: dict[str, Any] = json.loads(check_output("inspect", "--type", "image", image))["OCIv1"][
        "config"
    ]
    return config


@dataclass
class Container:
    """A buildah working container made from an image."""

    name: str
    image: str

    def command(
        self, argv: Sequence[str], *, volumes: Sequence[str] = (), env: Sequence[str] = ()
    ) -> list[str]:
        """``buildah run`` of ``argv`` as the image's user, on the host's network."""
        flags = ["--isolation", "chroot", "--network", "host"]
        for volume in volumes:
            flags += ["--volume", volume]
        for pair in env:
            flags += ["--env", pair]
        return buildah("run", *flags, self.name, "--", *argv)

    def run(
        self,
        argv: Sequence[str],
        *,
        volumes: Sequence[str] = (),
        env: Sequence[str] = (),
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv, volumes=volumes, env=env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -c code`` with the image's interpreter and environment."""
        return self.run(["python", "-c", code])

    def rootfs(self) -> Path:
        """Where the container's root filesystem is mounted on the host."""
        return Path(check_output("mount", self.name).strip())

    def written_since(self, started_at: float) -> tuple[list[str], int]:
        """Paths of the root filesystem changed after ``started_at`` (outside
        :data:`RUNTIME_PATHS`), and how many paths were looked at: buildah has no
        read-only root, so a test checks that nothing was written to it instead."""
        rootfs = self.rootfs()
        changed, seen = [], 0
        for directory, dirs, files in os.walk(rootfs):
            relative = os.path.relpath(directory, rootfs)
            if relative.split(os.sep)[0] in RUNTIME_PATHS:
                dirs.clear()
                continue
            for name in files + dirs:
                path = os.path.join(directory, name)
                if os.path.relpath(path, rootfs) in RUNTIME_PATHS:
                    continue
                seen += 1
                if os.lstat(path).st_mtime > started_at:
                    changed.append(os.path.relpath(path, rootfs))
        return changed, seen


@contextlib.contextmanager
def container(image: str) -> Iterator[Container]:
    """A fresh working container of ``image``, removed on leaving the block."""
    name = check_output("from", "--pull-never", image).strip()
    try:
        yield Container(name, image)
    finally:
        subprocess.run(buildah("rm", name), capture_output=True, timeout=120, check=False)


@dataclass
class Process:
    """A server started with ``buildah run``, in its own process group."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the whole group (buildah and the server), then SIGKILL."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)
        # The server may outlive buildah for a moment; give the group time to go.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def start(command: Sequence[str], log_path: Path) -> Process:
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            list(command), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Process(process, log_path)
