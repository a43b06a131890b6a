"""The V2 binary tensor extension: what goes in comes out, and bad bodies are named."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from common.core.errors import ClientError
from common.protocol.tensors import HEADER_LENGTH, binary_request, read_binary_request


def test_every_datatype_the_project_uses_comes_back_as_sent() -> None:
    sent = {
        "price": ("FP64", np.array([3.49, 1e-9, -0.0])),
        "store": ("INT32", np.array([12, 0, 2**31 - 1], dtype=np.int32)),
        "promoted": ("BOOL", np.array([True, False, True])),
        "day": ("BYTES", np.array([b"2026-03-14", b"", "é".encode()], dtype=object)),
    }
    body, headers = binary_request(sent, "r7")
    assert headers["content-type"] == "application/octet-stream"
    request = read_binary_request(body, headers, "m")
    assert request.id == "r7"
    for tensor, (name, (datatype, array)) in zip(request.inputs, sent.items(), strict=True):
        assert (tensor.name, tensor.datatype, tensor.shape) == (name, datatype, [3])
        assert tensor.as_numpy().tolist() == array.tolist()


def test_json_data_may_sit_beside_binary_inputs() -> None:
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "a", "shape": [2], "datatype": "INT32", "data": [1, 2]},
                {
                    "name": "b",
                    "shape": [2],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 16},
                },
            ]
        }
    )
    body = header + np.array([0.5, 1.5]).tobytes()
    request = read_binary_request(body, {HEADER_LENGTH: str(len(header))}, "m")
    assert [t.as_numpy().tolist() for t in request.inputs] == [[1, 2], [0.5, 1.5]]


def _body(size: int, shape: Any, extra: bytes = b"") -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": shape,
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    )
    return header + np.zeros(2).tobytes() + extra, {HEADER_LENGTH: str(len(header))}


def _bytes_body(raw: bytes) -> tuple[bytes, dict[str, str]]:
    # A BYTES element whose 4-byte length runs past the tensor.
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    return header + raw, {HEADER_LENGTH: str(len(header))}


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"{}", {HEADER_LENGTH: "abc"}, r'inference-header-content-length="abc" is invalid'),
        (b"{}", {HEADER_LENGTH: "99"}, r"between 1 and the body's 2 bytes"),
        (b"[1, 2]", {HEADER_LENGTH: "6"}, r"first 6 bytes are not a V2 header with inputs"),
        (*_body(64, [2]), r"input x is invalid: .*binary_data_size within the body"),
        (*_body(16, [3]), r"input x does not match its shape \[3\]"),
        (*_body(16, [2], extra=b"tail"), r"4 byte\(s\) after the last tensor"),
        (b'{"inputs": [{"shape": [1]}]}', {HEADER_LENGTH: "28"}, r"inputs\[0\] lacks a name"),
        (*_bytes_body(b"\xff\xff\xff\x7fabcd"), r"input s does not match its shape \[1\]"),
        # Shapes are checked before anything is allocated from them (issue 10).
        (*_body(16, ["a"]), r'input x has shape \["a"\]: expected a list of integers >= 0'),
        (*_body(16, [-5]), r"input x has shape \[-5\]: expected a list of integers >= 0"),
        (*_body(16, [True, 2]), r"input x has shape \[true, 2\]"),
        (*_body(16, "2"), r'input x has shape "2"'),
        (*_body(16, [10**12]), r"16 bytes are not 1000000000000 FP64 elements"),
        (*_body(16, [2**40, 2**40]), r"expected at most 32 dimensions whose product .* 2\*\*53"),
        (*_body(16, [1]), r"16 bytes are not 1 FP64 elements"),
        (*_bytes_body(b"\x00\x00\x00\x00" * 2), r"do not hold exactly 1 element"),
        (*_bytes_body(b""), r"do not hold exactly 1 element"),
        (b'{"inputs": [7]}', {HEADER_LENGTH: "15"}, r"inputs\[0\] lacks a name"),
        (
            b'{"inputs": [{"name": "a", "shape": [3], "datatype": "INT32", "data": [1, 2]}]}',
            {HEADER_LENGTH: "78"},
            r"input a does not match its shape \[3\]: 2 element\(s\) for the 3",
        ),
    ],
)
def test_a_malformed_binary_request_is_a_client_error_naming_the_problem(
    body: bytes, headers: dict[str, str], message: str
) -> None:
    with pytest.raises(ClientError, match=message) as caught:
        read_binary_request(body, headers, "m")
    assert caught.value.status_code == 400


def test_a_bytes_tensor_beyond_the_element_limit_is_refused_before_it_is_read() -> None:
    count = 1_000
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "shape": [count],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 4 * count},
                }
            ]
        }
    )
    body = header + b"\x00\x00\x00\x00" * count
    headers = {HEADER_LENGTH: str(len(header))}
    with pytest.raises(ClientError, match="1000 BYTES elements: at most 999") as caught:
        read_binary_request(body, headers, "m", max_bytes_elements=999)
    assert caught.value.status_code == 413
    read = read_binary_request(body, headers, "m", max_bytes_elements=1_000)
    assert read.inputs[0].as_numpy().tolist() == [b""] * count


_NOT_A_HEADER = [b'{"inputs": "abc"}', b'{"outputs": []}', b'"inputs"', b"{", b"[[]]"]


@pytest.mark.parametrize("header", _NOT_A_HEADER)
def test_a_header_without_a_list_of_inputs_is_named_so(header: bytes) -> None:
    with pytest.raises(ClientError, match="bytes are not a V2 header with inputs"):
        read_binary_request(header, {HEADER_LENGTH: str(len(header))}, "m")
