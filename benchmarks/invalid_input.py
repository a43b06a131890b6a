"""What an invalid request costs the transformer, beside a valid one of its size.

``python -m benchmarks.invalid_input`` times, in this process, reading and validating
request bodies as the transformer does (``transformer.protocol.records_from_v1`` on the
body's bytes; V2: pydantic, KServe's ``InferRequest``, then ``records_from_v2``), each
invalid body beside a valid one of as many rows and, where the invalid one is larger,
beside a valid one of as many bytes (as many rows as fit, the row limit raised to hold
them: what a body of that size costs when nothing is wrong with it):

- V1, the body of issue 20: ``--rows`` records, each with its 8 fields of the wrong type
  and 55 unknown keys (before the fix: 60 times the valid cost, every error built and
  sorted, five shown);
- V1, the same with a ``NaN`` (not JSON: read as V2 reads it, by another path);
- V1, one record of ``60 * --rows`` unknown keys;
- V1, one such record last, after valid ones: the most a search for the first problems
  walks;
- V2 columnar JSON, every value of the wrong type.

Each figure is the median of ``--repeats`` runs, as process CPU milliseconds; the
ratio is invalid over valid. Beside the whole read (from the body's bytes), validation
alone (from the decoded body): decoding JSON costs what the body's bytes and keys cost,
valid or not. Nothing is served: no server, no socket.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from kserve import InferRequest
from kserve.protocol.rest.v2_datamodels import InferenceRequest

from benchmarks.bodies import Record, raw_v2, sample_records
from common.core.errors import ClientError
from transformer import protocol
from transformer.schema import RAW_TYPES

__all__ = ["main"]


def hostile(record: Record, *, unknown: int = 55) -> Record:
    """``record`` with each field of the wrong type and ``unknown`` unknown keys.

    Examples
    --------
    >>> sorted(hostile({"date": "2026-03-14", "unit_price": 3.5}, unknown=1).items())
    [('date', [1]), ('unit_price', 'x'), ('x0', 0)]
    """
    wrong = {name: [1] if RAW_TYPES.get(name) is str else "x" for name in record}
    return wrong | {f"x{i}": 0 for i in range(unknown)}


def _cpu_ms(call: Callable[[], object], repeats: int) -> float:
    """Median CPU ms of ``call``; a refusal (``ClientError``) is its answer, not a failure."""
    timings = []
    for _ in range(repeats):
        started = time.process_time()
        try:
            call()
        except ClientError:
            pass
        timings.append((time.process_time() - started) * 1e3)
    return statistics.median(timings)


class _Body:
    """A request body, and how the transformer reads it: whole, or validated alone."""

    def __init__(self, body: dict[str, Any], protocol_: str, rows: int) -> None:
        self.raw = orjson.dumps(body)
        self.v2 = protocol_ == "v2"
        self.rows = rows
        self.decoded: Any = self._decode()

    def _decode(self) -> Any:
        if self.v2:
            request = InferenceRequest.model_validate_json(self.raw)
            return InferRequest.from_inference_request(request, "m")
        return orjson.loads(self.raw)

    def read(self) -> object:
        """Decode and validate, from the bytes."""
        if self.v2:
            return protocol.records_from_v2(self._decode(), max_rows=self.rows)
        return protocol.records_from_v1(self.raw, max_rows=self.rows)

    def validate(self) -> object:
        """Validate the decoded body alone."""
        if self.v2:
            return protocol.records_from_v2(self.decoded, max_rows=self.rows)
        return protocol.records_from_v1(self.decoded, max_rows=self.rows)


def _expect(call: Callable[[], object], valid: bool, what: str) -> None:
    """Check once that ``call`` accepts or refuses its body, as the row says."""
    try:
        call()
    except ClientError:
        if valid:
            raise
    else:
        if not valid:
            raise AssertionError(f"{what}: the invalid body was accepted")


def _v2_all_wrong(records: list[Record]) -> dict[str, Any]:
    body = raw_v2(records)
    for tensor in body["inputs"]:
        wrong: Any = 1 if RAW_TYPES[tensor["name"]] is str else "x"
        tensor["data"] = [wrong] * len(records)
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.invalid_input", description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000, help="rows per request (10000)")
    parser.add_argument("--repeats", type=int, default=7, help="runs; the median is shown (7)")
    args = parser.parse_args(argv)
    rows, repeats = args.rows, args.repeats

    records = sample_records(rows, seed=0)
    v1_valid = _Body({"instances": records}, "v1", rows)

    def as_many_bytes(invalid: _Body) -> tuple[str, _Body]:
        """As many valid records as ``invalid`` has bytes."""
        fit = round(rows * len(invalid.raw) / len(v1_valid.raw))
        return f"as many bytes ({fit} rows)", _Body(
            {"instances": sample_records(fit, 1)}, "v1", fit
        )

    hostile_v1 = _Body({"instances": [hostile(r) for r in records]}, "v1", rows)
    # The same with a NaN first: JSON that is not strict, read by its own path.
    with_nan = _Body({"instances": [hostile(r) for r in records]}, "v1", rows)
    with_nan.raw = with_nan.raw.replace(b'"unit_price":"x"', b'"unit_price":NaN', 1)
    many_keys = _Body({"instances": [hostile(records[0], unknown=60 * rows)]}, "v1", 1)
    cases = [
        ("V1, every record hostile (issue 20)", "as many rows", v1_valid, hostile_v1),
        ("V1, every record hostile (issue 20)", *as_many_bytes(hostile_v1), hostile_v1),
        ("V1, every record hostile, and a NaN", *as_many_bytes(with_nan), with_nan),
        (f"V1, one record of {60 * rows} unknown keys", *as_many_bytes(many_keys), many_keys),
        (
            "V1, the last record hostile",
            "as many rows",
            v1_valid,
            _Body({"instances": [*records[:-1], hostile(records[-1])]}, "v1", rows),
        ),
        (
            "V2 columnar, every value of the wrong type",
            "as many rows",
            _Body(raw_v2(records), "v2", rows),
            _Body(_v2_all_wrong(records), "v2", rows),
        ),
    ]
    print(f"CPU ms per request, invalid ones of {rows} rows; medians of {repeats} runs")
    print(
        "| invalid request | beside a valid one of | MB valid / invalid | read: valid ms "
        "| invalid ms | invalid / valid | validation alone: valid ms | invalid ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for what, beside, valid, invalid in cases:
        _expect(valid.read, True, what)
        _expect(invalid.read, False, what)
        read = [_cpu_ms(body.read, repeats) for body in (valid, invalid)]
        alone = [_cpu_ms(body.validate, repeats) for body in (valid, invalid)]
        size = f"{len(valid.raw) / 1e6:.1f} / {len(invalid.raw) / 1e6:.1f}"
        print(
            f"| {what} | {beside} | {size} | {read[0]:.1f} | {read[1]:.1f} "
            f"| {read[1] / read[0]:.2f} | {alone[0]:.1f} | {alone[1]:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
