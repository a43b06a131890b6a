"""A stand-in predictor that records what it receives: a real HTTP server in a thread.

It lets a test see exactly which features the transformer forwards, and make the
"predictor" slow, without touching the transformer's code.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from common.protocol import tensors


@dataclass
class Recording:
    """What the stand-in received, and how it behaves."""

    port: int = 0
    delay_seconds: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    rows = body["inputs"][0]["shape"][0]
    return {
        "model_name": "sales-quantity-classifier",
        "model_version": "recorded",
        "outputs": [
            {
                "name": "predicted_class",
                "datatype": "BYTES",
                "shape": [rows],
                "data": ["low"] * rows,
            },
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": [rows, 3],
                "parameters": {"classes": "low,medium,high"},
                "data": [1.0, 0.0, 0.0] * rows,
            },
        ],
    }


def _decoded(content: bytes, headers: Message) -> dict[str, Any]:
    """The request as JSON would carry it, whether it came as JSON or binary tensors."""
    json_length = headers.get(tensors.HEADER_LENGTH)
    if json_length is None:
        body: dict[str, Any] = json.loads(content)
        return body
    request = tensors.read_binary_request(content, {tensors.HEADER_LENGTH: json_length}, "m")
    inputs = [
        {"name": i.name, "datatype": i.datatype, "shape": i.shape, "data": i.as_numpy().tolist()}
        for i in request.inputs
    ]
    return {"id": request.id, "inputs": inputs, "binary": True}


@contextmanager
def recording_predictor(delay_seconds: float = 0.0) -> Iterator[Recording]:
    """Serve V2 ``infer`` on a free 127.0.0.1 port, recording every request."""
    recording = Recording(delay_seconds=delay_seconds)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the stdlib's name
            body = _decoded(self.rfile.read(int(self.headers["content-length"])), self.headers)
            recording.bodies.append(body)
            recording.headers.append({k.lower(): v for k, v in self.headers.items()})
            time.sleep(recording.delay_seconds)
            payload = json.dumps(_answer(body)).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # caller gave up
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # the stdlib's names
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    recording.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recording
    finally:
        server.shutdown()
        server.server_close()
