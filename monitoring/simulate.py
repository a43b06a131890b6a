"""Realistic traffic for demonstrations and tests, and its ground truth.

Rows are sampled from a sales data set (the one training wrote), optionally
drifted, and sent to a transformer on this machine at a fixed rate for a bounded
time; the label of every answered row is written with its request id and row
position, as ground truth would arrive later in production.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd

from monitoring.errors import BadInput
from monitoring.features import RAW_FIELDS
from monitoring.settings import SimulateSettings
from transformer.schema import RAW_TYPES

__all__ = ["Drift", "parse_drift", "run_simulation"]

_LOCAL_HOSTS: Final = {"127.0.0.1", "localhost", "::1"}
_LABEL: Final = "quantity_class"
#: The raw fields read as text (S012 stays S012, not the number 12).
_TEXT: Final[Mapping[Hashable, type[str]]] = {
    name: str for name, kind in RAW_TYPES.items() if kind is str
}


@dataclass(frozen=True)
class Drift:
    """How to move the traffic away from the data set."""

    price_factor: float = 1.0
    category: str | None = None
    category_share: float = 0.0
    season_days: int = 0


def parse_drift(text: str) -> Drift:
    """``price=1.3,category=frozen:0.5,season=182`` as a :class:`Drift`.

    Examples
    --------
    >>> parse_drift("price=1.3,season=182")
    Drift(price_factor=1.3, category=None, category_share=0.0, season_days=182)
    """
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        try:
            if key == "price":
                values["price_factor"] = float(value)
                if values["price_factor"] <= 0:
                    raise ValueError("must be positive")
            elif key == "category":
                name, _, share = value.partition(":")
                values["category"], values["category_share"] = name, float(share)
                if not 0 <= values["category_share"] <= 1 or not name:
                    raise ValueError("expected NAME:SHARE with SHARE in [0, 1]")
            elif key == "season":
                values["season_days"] = int(value)
            else:
                raise ValueError("unknown kind; expected price, category or season")
        except ValueError as exc:
            raise BadInput(
                f"--drift={text!r} is invalid at {part!r}: {exc} "
                "(e.g. price=1.3,category=frozen:0.5,season=182)"
            ) from exc
    return Drift(**values)


def apply_drift(sales: pd.DataFrame, drift: Drift, rng: np.random.Generator) -> pd.DataFrame:
    """A drifted copy of ``sales`` (labels unchanged)."""
    out = sales.copy()
    if drift.price_factor != 1.0:
        out["unit_price"] = (out["unit_price"] * drift.price_factor).round(2)
    if drift.category is not None:
        chosen = rng.random(len(out)) < drift.category_share
        out.loc[chosen, "category"] = drift.category
    if drift.season_days:
        dates = pd.to_datetime(out["date"]) + pd.Timedelta(days=drift.season_days)
        out["date"] = dates.dt.strftime("%Y-%m-%d")
    return out


def run_simulation(settings: SimulateSettings) -> dict[str, Any]:
    """Send the traffic, write the labels; return counts of what happened."""
    url = urlsplit(settings.transformer_url)
    if url.scheme not in ("http", "https") or url.hostname not in _LOCAL_HOSTS:
        raise BadInput(
            f"--transformer_url={settings.transformer_url!r} is invalid: "
            "expected http://127.0.0.1:PORT (traffic stays on this machine)"
        )
    drift = parse_drift(settings.drift)
    sales = _load(settings.data)
    rng = np.random.default_rng(settings.seed)
    traffic = apply_drift(sales, drift, rng)
    endpoint = f"{settings.transformer_url.rstrip('/')}/v1/models/{settings.model_name}:predict"
    total = max(1, int(settings.rate * settings.duration))
    labels: list[dict[str, Any]] = []
    errors: dict[str, int] = {}
    started = time.monotonic()
    deadline = started + settings.duration + settings.timeout_seconds
    sent = 0
    with httpx.Client(timeout=settings.timeout_seconds) as client:
        for number in range(total):
            wait = started + number / settings.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if time.monotonic() > deadline:
                break
            rows = rng.integers(0, len(traffic), settings.rows_per_request)
            records = traffic.iloc[rows][list(RAW_FIELDS)].to_dict("records")
            request_id = f"sim-{uuid.uuid4()}"
            sent += 1
            try:
                answer = client.post(
                    endpoint, json={"instances": records}, headers={"x-request-id": request_id}
                )
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if answer.status_code != 200:
                errors[str(answer.status_code)] = errors.get(str(answer.status_code), 0) + 1
                continue
            now = datetime.now(UTC).isoformat()
            for position, row in enumerate(rows.tolist()):
                label = sales[_LABEL].iloc[row]
                labels.append(
                    {"request_id": request_id, "row": position, "label": label, "timestamp": now}
                )
    _write_labels(labels, settings.labels_out)
    elapsed = time.monotonic() - started
    return {
        "requests_sent": sent,
        "requests_answered": sent - sum(errors.values()),
        "errors": errors,
        "rows_labelled": len(labels),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(sent / elapsed, 1) if elapsed else None,
        "drift": json.loads(json.dumps(drift.__dict__)),
        "labels_out": settings.labels_out,
    }


def _load(path: str) -> pd.DataFrame:
    try:
        sales = pd.read_csv(path, dtype=_TEXT)
    except (OSError, ValueError) as exc:
        raise BadInput(
            f"--data={path!r} cannot be read ({exc}); `make up` writes .stack/data/train.csv"
        ) from exc
    missing = [c for c in (*RAW_FIELDS, _LABEL) if c not in sales.columns]
    if missing or not len(sales):
        raise BadInput(f"--data={path!r}: needs rows with columns {[*RAW_FIELDS, _LABEL]}")
    return sales


def _write_labels(labels: list[dict[str, Any]], path: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    frame = pd.DataFrame(labels, columns=["request_id", "row", "label", "timestamp"])
    frame.to_csv(temporary, index=False)
    temporary.replace(target)
