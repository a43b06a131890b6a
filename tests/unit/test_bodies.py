"""V1 bodies KServe hands over undecoded (common.protocol.bodies.json_body)."""

from __future__ import annotations

import math

import pytest

from common.core.errors import ClientError
from common.protocol.bodies import json_body


def test_a_body_kserve_decoded_is_used_as_it_is() -> None:
    payload = {"instances": [{"store_id": "S1"}]}
    assert json_body(payload) is payload


@pytest.mark.parametrize("body", [b'{"instances": [1, 2]}', '{"instances": [1, 2]}'])
def test_json_is_read_whatever_the_content_type_claimed(body: bytes | str) -> None:
    # curl -d says form-urlencoded, and KServe then leaves the body as it came.
    assert json_body(body) == {"instances": [1, 2]}


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b'{"instances": [NaN]}', math.nan),
        (b'{"instances": [Infinity]}', math.inf),
        (b'{"instances": [-Infinity]}', -math.inf),
        (b'{"instances": [1e999]}', math.inf),
    ],
)
def test_numbers_json_lacks_reach_the_records_check(body: bytes, value: float) -> None:
    read = json_body(body)["instances"][0]
    assert math.isnan(read) if math.isnan(value) else read == value


def test_an_integer_beyond_a_double_reaches_the_records_check() -> None:
    big = 10**400
    assert json_body(f'{{"instances": [{big}]}}'.encode()) == {"instances": [big]}


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [',
        b"instances=1",
        b'{"a": "NaN"',  # NaN as a string is no reason to read further
        b"[1" + b"0" * 5000 + b"]",  # beyond the standard library's 4300 digits
        b"",
    ],
)
def test_anything_else_is_a_400_that_says_it_is_not_json(body: bytes) -> None:
    with pytest.raises(ClientError, match="the request body is not valid JSON") as raised:
        json_body(body)
    assert raised.value.status_code == 400
