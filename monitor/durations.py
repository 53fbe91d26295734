"""Prometheus-style durations (``90s``, ``5m``, ``1h30m``, ``1d``, ``1w``) as real timedeltas.

One parser for every interval, timeout and retention in the config, so ``5m`` means the same
thing everywhere and a typo is rejected rather than read as zero.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_ORDER = ["y", "w", "d", "h", "m", "s", "ms"]
#: Prometheus' limit (Go's int64 nanoseconds, about 292 years): a longer ``group_wait`` or
#: silence crashed ``cxmon validate`` (OverflowError) or overflowed a date at run time.
MAX_DURATION = timedelta(microseconds=(2**63 - 1) // 1000)


def parse_duration(text: str) -> timedelta:
    """Parse a Prometheus duration such as ``1h30m``.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    >>> parse_duration("1w")
    datetime.timedelta(days=7)
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 1h, 1d")
    pos, total, last_rank = 0, timedelta(0), -1
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        rank = _ORDER.index(m.group(2))
        if rank <= last_rank:
            raise ValueError(f"invalid duration {text!r}: units must go from largest to smallest")
        last_rank = rank
        try:
            total += int(m.group(1)) * _UNITS[m.group(2)]
        except OverflowError:
            total = timedelta.max
        pos = m.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 1h30m, 1d, 1w")
    if total > MAX_DURATION:
        raise ValueError(f"invalid duration {text!r}: out of range (at most 292y)")
    return total


def format_duration(value: timedelta) -> str:
    """Inverse of :func:`parse_duration` (``timedelta(minutes=90)`` -> ``1h30m``). Weeks
    only for a whole number of them: a retention of 90 days reads ``90d``, not ``12w6d``.

    >>> [format_duration(timedelta(days=d)) for d in (90, 14, 8.5)]
    ['90d', '2w', '8d12h']
    """
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    out = []
    day_ms = int(_UNITS["d"].total_seconds() * 1000)
    for unit in _ORDER:
        size = int(_UNITS[unit].total_seconds() * 1000)
        if unit == "w" and (ms // day_ms) % 7:
            continue  # days not a whole number of weeks: all of them as days
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


def _coerce(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("expected a duration string such as 5m or 1h")


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+(ms|s|m|h|d|w|y))+$"}),
]
"""A pydantic field type: accepts ``"5m"`` in YAML, holds a ``timedelta``."""


def positive_duration(value: timedelta) -> timedelta:
    """``value`` if above zero, else a ValueError for a field validator (a zero refit or
    half-life would divide by zero or spin)."""
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


def _to_seconds(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected seconds or a duration string such as 2s or 500ms")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        return parse_duration(value).total_seconds()
    raise ValueError("expected seconds or a duration string such as 2s or 500ms")


Seconds = Annotated[
    float,
    BeforeValidator(_to_seconds),
    WithJsonSchema({"anyOf": [{"type": "number"},
                              {"type": "string", "pattern": r"^(\d+(ms|s|m|h|d|w|y))+$"}]}),
]
"""A pydantic field type for timeouts: ``2s``, ``500ms`` or a plain number of seconds (kept
for compatibility); holds float seconds."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None.

    >>> retry_after_seconds("7")
    7.0
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT",
    ...                     datetime(2015, 10, 21, 7, 28, tzinfo=UTC))
    10.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
