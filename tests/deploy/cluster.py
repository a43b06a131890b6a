"""A Kubernetes API server for the deploy tests, reached through a kubeconfig.

By default the tests start the project's real API server (``shared/tools/kube-apiserver``:
etcd + kube-apiserver's CRD-serving half on 127.0.0.1, on free ports, state in a temporary
directory) and stop it after the session. It writes an audit log (every request's verb,
resource, namespace, name and user agent: ``Cluster.audit_events``), from which the rollout
Job's Role is checked against the calls the CLI makes. With ``DEPLOY_KUBECONFIG=/path`` they
use that cluster instead (kind, a cloud cluster with KServe), unchanged and without an audit
log: every object goes into a fresh namespace per test.
"""

from __future__ import annotations

import contextlib
import json
import lzma
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.servers import free_port
from tests.deploy.manifests import CRD_FILE, kubectl, shared_dir

__all__ = ["Cluster", "started_cluster"]

CRD_NAME = "inferenceservices.serving.kserve.io"
REVISION_CRD_NAME = "revisions.serving.knative.dev"
REVISION_CRD_FILE = Path(__file__).parent / "crds" / "knative-revision-stand-in.yaml"


def _free_port_pair() -> int:
    """A port p with p and p + 1 both free (etcd's client and peer ports), outside the
    ephemeral range like every test server's port (harness.servers.free_port)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


@dataclass(frozen=True)
class Cluster:
    """Where the API server is, and kubectl pointed at it."""

    kubeconfig: Path
    audit_log: Path | None = None
    """The API server's audit log (JSON lines), where it writes one: the started server."""

    def audit_mark(self) -> int:
        """Where the audit log ends now: :meth:`audit_events` after it reads what came later."""
        return self.audit_log.stat().st_size if self.audit_log else 0

    def audit_events(self, since: int = 0) -> list[dict[str, object]]:
        """The audit events written after ``since`` (:meth:`audit_mark`): each request once, as
        it completed (the policy logs metadata and omits the RequestReceived stage)."""
        if self.audit_log is None:
            raise RuntimeError("this cluster writes no audit log (DEPLOY_KUBECONFIG)")
        with self.audit_log.open("rb") as log:
            log.seek(since)
            return [json.loads(line) for line in log.read().splitlines() if line.strip()]

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [kubectl(), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done

    def namespace(self) -> str:
        """A fresh namespace (created where the server has a core API, as a cluster does)."""
        name = f"sqc-test-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name, check=False)
        return name

    def get_json(self, *args: str) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return loaded

    def _established(self, name: str = CRD_NAME) -> bool:
        crd = self.get_json("crd", name)
        return _conditions(crd).get("Established") == "True"

    def install_knative_revision_crd(self) -> None:
        """A stand-in for Knative's Revision CRD (tests/deploy/crds/), unless the cluster has
        one: the rollout tests play Knative with it. Waits until it is Established."""
        if self.kubectl("get", "crd", REVISION_CRD_NAME, check=False).returncode == 0:
            return
        self.kubectl("apply", "--server-side", "-f", str(REVISION_CRD_FILE), timeout=120)
        deadline = time.monotonic() + 60
        while not self._established(REVISION_CRD_NAME):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{REVISION_CRD_NAME} not Established in 60 s")
            time.sleep(0.2)

    def install_kserve_crd(self) -> None:
        """Server-side apply KServe's CRD (2 MB: too big for client-side apply's annotation),
        then wait until it is Established and its schema is published."""
        crd = shared_dir() / CRD_FILE
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd), timeout=120)
        deadline = time.monotonic() + 60
        while not self._established():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{CRD_NAME} not Established in 60 s")
            time.sleep(0.2)
        while time.monotonic() < deadline:
            published = self.kubectl(
                "get", "--raw", "/openapi/v3/apis/serving.kserve.io/v1beta1", check=False
            )
            if published.returncode == 0 and "InferenceService" in published.stdout:
                return
            time.sleep(0.3)
        raise TimeoutError("the InferenceService schema never showed in /openapi/v3")


def _conditions(crd: dict[str, object]) -> dict[str, str]:
    status = crd.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    return {c["type"]: c["status"] for c in conditions or []}


def _start_script() -> Path:
    return shared_dir() / "tools" / "kube-apiserver" / "start.sh"


# Every request, once, when its response is complete: who asked what of which object.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""


def _with_audit_log(state_dir: Path) -> Path:
    """Have start.sh run the API server with an audit log; the log's path.

    start.sh runs ``$KAPI_DIR/bin/apiextensions-apiserver`` when that file is executable, and
    unpacks (or builds) the binary there otherwise. So the binary is unpacked (or built) beside
    it here, as start.sh would, and that path gets a script that runs it with the audit flags
    added: the generic API server's own (--audit-policy-file, --audit-log-path; the log
    backend writes each event before the response is sent).
    """
    tools = _start_script().parent
    bin_dir = state_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    real = bin_dir / "apiextensions-apiserver.real"
    packed = tools / "apiextensions-apiserver.xz"
    if packed.exists():
        with lzma.open(packed) as source, real.open("wb") as target:
            shutil.copyfileobj(source, target)
    else:
        subprocess.run(
            ["bash", str(tools / "build.sh")],
            env={**os.environ, "KAPI_BIN": str(real)},
            check=True,
            timeout=1800,
        )
    real.chmod(0o755)
    policy = state_dir / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    log = state_dir / "audit.log"
    wrapper = bin_dir / "apiextensions-apiserver"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'exec "{real}" "$@" --audit-policy-file="{policy}" --audit-log-path="{log}" '
        "--audit-log-mode=blocking\n"
    )
    wrapper.chmod(0o755)
    return log


@contextlib.contextmanager
def started_cluster(state_dir: Path) -> Iterator[Cluster]:
    """The cluster of DEPLOY_KUBECONFIG, or a real API server started for the session."""
    if "DEPLOY_KUBECONFIG" in os.environ:
        cluster = Cluster(Path(os.environ["DEPLOY_KUBECONFIG"]))
        cluster.install_kserve_crd()
        yield cluster
        return
    env = {
        **os.environ,
        "KAPI_DIR": str(state_dir),
        "KAPI_PORT": str(_free_port_pair()),
        "KAPI_ETCD_PORT": str(_free_port_pair()),
        # start.sh looks for kubectl on PATH: the pinned one beside this interpreter.
        "PATH": f"{Path(kubectl()).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    script = _start_script()
    audit_log = _with_audit_log(state_dir)

    def run(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(script), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    started = run([])
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        cluster = Cluster(state_dir / "kubeconfig", audit_log)
        cluster.install_kserve_crd()
        yield cluster
    finally:
        run(["stop"])
