"""The release's tag and push steps against a real local OCI registry.

Debian's ``docker-registry`` is started on a free 127.0.0.1 port with its own config and
storage; ``scripts/release.sh --only tag,push`` pushes the three images to it; each is
pulled back by the digest the release printed, and its digest and labels read back with
``skopeo inspect``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.servers import free_port
from tests.images.buildah import PARTS, ROOT, buildah, check_output


@pytest.fixture()
def local_registry(tmp_path: Path) -> Iterator[str]:
    """``host:port`` of a docker-registry serving from ``tmp_path``; stopped afterwards."""
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = (tmp_path / "registry.log").open("wb")
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "registry.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "registry not up in 30 s"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def test_release_pushes_images_that_pull_back_by_digest_with_their_labels(
    images: dict[str, str], local_registry: str
) -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "release.sh"), "--only", "tag,push"],
        cwd=ROOT,
        env={
            **os.environ,
            "RELEASE_REGISTRY": local_registry,
            "RELEASE_TLS_VERIFY": "false",
        },
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "+ buildah push" in done.stderr
    pushed = done.stdout.split()
    assert len(pushed) == len(PARTS)
    for part, reference in zip(PARTS, pushed, strict=True):
        repository, digest = reference.split("@")
        assert repository == f"{local_registry}/sales-quantity-classifier-{part}"
        remote = json.loads(
            subprocess.run(
                ["skopeo", "inspect", "--tls-verify=false", f"docker://{reference}"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )
        assert remote["Digest"] == digest
        local_labels = json.loads(check_output("inspect", "--type", "image", images[part]))[
            "OCIv1"
        ]["config"]["Labels"]
        assert remote["Labels"] == local_labels
        version = local_labels["org.opencontainers.image.version"]
        assert version in remote["RepoTags"]

        # Pulled back by digest, it is the same image: the same config, so the same ID.
        pulled = subprocess.run(
            buildah("pull", "--quiet", "--tls-verify=false", reference),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout.strip()
        local_id = check_output(
            "inspect", "--type", "image", "--format", "{{.FromImageID}}", images[part]
        ).strip()
        assert pulled == local_id
