"""Time windows: ``--window 24h`` (ending now) or ``--since`` / ``--until``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitoring.errors import BadInput

__all__ = ["TimeWindow", "parse_duration", "parse_time", "resolve_window"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TOO_LONG = "a window must start after the year 1; omit --window to read every row"


@dataclass(frozen=True)
class TimeWindow:
    """A half-open UTC interval ``[since, until)``; either end may be open (None)."""

    since: datetime | None
    until: datetime | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }

    def overlaps_hour(self, hour_start: datetime) -> bool:
        """Whether any instant of the hour starting at ``hour_start`` is in the window."""
        hour_end = hour_start + timedelta(hours=1)
        if self.since is not None and hour_end <= self.since:
            return False
        return not (self.until is not None and hour_start >= self.until)


def parse_duration(text: str, flag: str) -> timedelta:
    """``30m``, ``24h``, ``7d``... as a timedelta.

    Examples
    --------
    >>> parse_duration("24h", "--window")
    datetime.timedelta(days=1)
    """
    match = _DURATION.match(text)
    if match is None or float(match[1]) <= 0:
        raise BadInput(
            f"{flag}={text!r} is invalid: expected a positive number and a unit "
            "(s, m, h, d, w), e.g. 24h"
        )
    try:
        return timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    except OverflowError:  # more than 999,999,999 days
        raise BadInput(f"{flag}={text!r} is invalid: too long ({_TOO_LONG})") from None


def parse_time(text: str, flag: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC.

    Examples
    --------
    >>> parse_time("2026-03-14T10:00", "--since").isoformat()
    '2026-03-14T10:00:00+00:00'
    """
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(
            f"{flag}={text!r} is invalid: expected an ISO 8601 time such as 2026-03-14T10:00Z"
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the year 1 in UTC
        raise BadInput(f"{flag}={text!r} is invalid: out of the range of dates") from None


def resolve_window(
    window: str | None, since: str | None, until: str | None, now: datetime | None = None
) -> TimeWindow:
    """The window the flags describe; no flags at all means every row."""
    if window is not None and (since is not None or until is not None):
        raise BadInput("--window cannot be combined with --since/--until: give one or the other")
    if window is not None:
        now = now or datetime.now(UTC)
        length = parse_duration(window, "--window")
        try:
            return TimeWindow(now - length, now)
        except OverflowError:
            raise BadInput(f"--window={window!r} is invalid: too long ({_TOO_LONG})") from None
    start = parse_time(since, "--since") if since else None
    end = parse_time(until, "--until") if until else None
    if start is not None and end is not None and start >= end:
        raise BadInput(f"--since={since!r} is not before --until={until!r}")
    return TimeWindow(start, end)
