"""Start what the benchmarks measure: MLflow, a trained model and the servers of each design.

Mirrors ``tests/integration/conftest.py`` and uses :mod:`harness.servers`: every
process listens on a free 127.0.0.1 port, logs to its own file and is stopped,
with its process group, when the :class:`Stack` closes, also on error or Ctrl-C.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from harness.servers import Server, free_port, start_mlflow, start_server, stop_group

__all__ = [
    "CAPTURE_FLUSH_SECONDS",
    "MODEL",
    "MODEL_URI",
    "REF_SUFFIX",
    "SERVER_KEYS",
    "Pinning",
    "ServerSpec",
    "Stack",
    "predictor_accepts",
    "ref_tree",
    "start_mlflow",
    "stop_group",
    "train",
]

MODEL: Final = "sales-quantity-classifier"
MODEL_URI: Final = f"models:/{MODEL}@production"
_READY: Final = f"/v2/models/{MODEL}/ready"
#: What :meth:`Stack.start` can start.
SERVER_KEYS: Final = (
    "baseline",
    "baseline-numpy",
    "mlflow-serve",
    "predictor",
    "predictor-nobatch",
    "predictor-sklearn",
    "transformer",
    "transformer-capture",
    "transformer-json",
    "transformer-v1",
)
#: The suffix of a server run from the compared commit's tree (``Stack.ref_dir``).
REF_SUFFIX: Final = "@ref"
#: How each transformer variant calls the predictor.
_TRANSFORMER_FLAGS: Final = {
    "transformer": [],
    "transformer-capture": [],  # and --capture_uri: a directory of its own (Stack.spec)
    "transformer-json": ["--predictor_binary_data", "false"],
    "transformer-v1": ["--predictor_protocol", "v1"],
}
#: How soon the capturing transformer writes what it captured (its default is 10 s).
CAPTURE_FLUSH_SECONDS: Final = 1.0


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the load generator and the measured servers may run on.

    ``None`` leaves a side to the scheduler.
    """

    client: tuple[int, ...] | None
    server: tuple[int, ...] | None

    def client_prefix(self) -> list[str]:
        """``taskset -c CPUS`` for the load generator, or nothing."""
        return _taskset(self.client)

    def server_prefix(self) -> list[str]:
        """``taskset -c CPUS`` for every measured server, or nothing."""
        return _taskset(self.server)

    def describe(self) -> str:
        """One line for the report header."""
        if self.client is None and self.server is None:
            return "unpinned: the scheduler spreads load generator and servers over all CPUs"
        return (
            f"load generator on CPU {_cpus(self.client)}, "
            f"every measured server on CPU {_cpus(self.server)} (taskset)"
        )


def _cpus(cpus: tuple[int, ...] | None) -> str:
    return "any" if cpus is None else ",".join(map(str, cpus))


def _taskset(cpus: tuple[int, ...] | None) -> list[str]:
    return [] if cpus is None else ["taskset", "-c", _cpus(cpus)]


def train(tracking_uri: str, data_dir: Path, rows: int | None) -> dict[str, object]:
    """Run ``python -m training`` (register and promote); return its summary line."""
    command = [sys.executable, "-m", "training", "--data_dir", str(data_dir)]
    if rows is not None:
        command += ["--rows", str(rows)]
    done = subprocess.run(
        command,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python -m training failed:\n{done.stderr[-4000:]}")
    summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def ref_tree(ref: str, into: Path, *, prog: str = "python -m benchmarks") -> Path:
    """The source tree of commit ``ref`` of this repository, extracted under ``into``.

    A commit git cannot name ends the program with a message naming it (``prog: error:
    --compare_ref REF: ...``).
    """
    root = Path(__file__).resolve().parents[1]
    git = shutil.which("git")
    if git is None:
        raise SystemExit(f"{prog}: error: --compare_ref needs git")
    archive = subprocess.run(
        [git, "-C", str(root), "archive", "--format=tar", f"{ref}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        reason = archive.stderr.decode(errors="replace").strip().splitlines()
        raise SystemExit(
            f"{prog}: error: --compare_ref {ref}: {reason[-1] if reason else 'git archive failed'}"
        )
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def predictor_accepts(flag: str) -> bool:
    """Whether ``python -m predictor --help`` lists ``flag`` (e.g. ``--max_batch_size``)."""
    done = subprocess.run(
        [sys.executable, "-m", "predictor", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return flag in done.stdout.split()  # a word, not a prefix of another flag


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server of :data:`SERVER_KEYS`, and when it is ready."""

    command: list[str]
    """The command line, with the server prefix; ``python`` is this interpreter."""
    ready_path: str
    """The path that answers 200 once it serves."""
    env: dict[str, str]
    """Variables set on top of this process's environment."""
    cwd: Path | None
    """Where it runs: the compared commit's tree, or None (here)."""
    capture: Path | None = None
    """Where it captures served rows (``transformer-capture``), or None."""


@dataclass
class Stack:
    """The measured servers, started on demand, pinned by ``server_prefix``.

    Parameters
    ----------
    tracking_uri : str
        The MLflow server holding the promoted model.
    log_dir : Path
        Where each server logs.
    server_prefix : list of str
        Prepended to every server command (``taskset -c 1``), inherited by children.
    predictor_flags : list of str
        Extra flags for every predictor (a design variant, e.g. ``--max_batch_size 1``).
    ref_dir : Path, optional
        Another commit's source tree: a key ending in :data:`REF_SUFFIX` starts that
        tree's server (``transformer@ref`` calls ``predictor@ref``), with this
        interpreter and its packages.
    """

    tracking_uri: str
    log_dir: Path
    server_prefix: list[str]
    predictor_flags: list[str] = field(default_factory=list)
    ref_dir: Path | None = None
    servers: dict[str, Server] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)

    def start(self, key: str) -> Server:
        """Start the server ``key`` of :data:`SERVER_KEYS` (once) and wait until ready."""
        if key in self.servers:
            return self.servers[key]
        port = free_port()
        spec = self.spec(key, port)
        server = start_server(
            key,
            spec.command,
            port=port,
            log_dir=self.log_dir,
            env=spec.env,
            ready_path=None,
            cwd=spec.cwd,
        )
        self.servers[key] = server
        server.wait_ready(spec.ready_path, timeout=240)
        return server

    def spec(self, key: str, port: int) -> ServerSpec:
        """How to start the server ``key`` on ``port``, which the caller starts and stops.

        A transformer's predictor is started first (once, by :meth:`start`) and left
        running; ``transformer-capture`` captures into a directory of its own under the
        logs' parent directory.
        """
        plain, ref = key.removesuffix(REF_SUFFIX), key.endswith(REF_SUFFIX)
        if ref and self.ref_dir is None:
            raise ValueError(f"server {key!r} needs the compared commit's tree (ref_dir)")
        args, ready, env = self._spec(plain, port, suffix=REF_SUFFIX if ref else "")
        capture = None
        if plain == "transformer-capture":
            capture = self.log_dir.parent / "capture" / f"{key}-{port}"
            args += ["--capture_uri", str(capture)]
            args += ["--capture_flush_seconds", str(CAPTURE_FLUSH_SECONDS)]
        command = [*self.server_prefix, *args]
        self.commands[key] = [sys.executable if a == "python" else a for a in command]
        return ServerSpec(command, ready, env, self.ref_dir if ref else None, capture)

    def close(self) -> None:
        """Stop every server started, with whatever it started itself."""
        for server in reversed(list(self.servers.values())):
            stop_group(server)
        self.servers.clear()

    def _spec(
        self, key: str, port: int, *, suffix: str = ""
    ) -> tuple[list[str], str, dict[str, str]]:
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri}
        if key in ("baseline", "baseline-numpy"):
            args = ["python", "-m", "benchmarks.baseline_app", "--model_uri", MODEL_URI]
            if key == "baseline-numpy":
                args.append("--compile_model")
            return [*args, "--port", str(port)], "/health", env
        if key == "mlflow-serve":
            # MLflow execs `uvicorn` by name: this interpreter's must come first on PATH.
            bin_dir = str(Path(sys.executable).parent)
            env["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
            args = ["python", "-m", "mlflow", "models", "serve", "-m", MODEL_URI]
            args += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
            return args, "/ping", env
        if key in ("predictor", "predictor-nobatch", "predictor-sklearn"):
            args = ["python", "-m", "predictor", "--tracking_uri", self.tracking_uri]
            args += ["--http_port", str(port), *self.predictor_flags]
            if key == "predictor-nobatch":
                args += ["--max_batch_size", "1"]
            if key == "predictor-sklearn":
                args += ["--compile_model", "false"]
            return args, _READY, env
        if key in _TRANSFORMER_FLAGS:
            predictor = self.start("predictor" + suffix)
            args = [
                "python",
                "-m",
                "transformer",
                "--predictor_host",
                f"127.0.0.1:{predictor.port}",
            ]
            args += [*_TRANSFORMER_FLAGS[key], "--http_port", str(port)]
            return args, _READY, env
        raise ValueError(f"server {key!r} is unknown: expected one of {', '.join(SERVER_KEYS)}")
