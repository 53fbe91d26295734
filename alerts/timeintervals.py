"""Alertmanager time intervals: named windows a route is muted in (``mute_time_intervals``)
or active only in (``active_time_intervals``).

Same syntax and semantics as Alertmanager's ``timeinterval`` package: a time interval matches
when every field it sets matches (``times`` as ``[start, end)`` minutes of the day,
``weekdays`` ``monday:friday`` (ranges do not wrap: ``saturday:sunday`` is rejected),
``days_of_month`` ``1:5`` or ``-3:-1`` counted from the end of
the month, ``months`` ``january:march`` or ``1:3``, ``years`` ``2026:2027``), in ``location``
(IANA name, default UTC). A named interval matches when any of its entries does.

>>> spec = TimeIntervalSpec.model_validate(
...     {"weekdays": ["saturday", "sunday"],
...      "times": [{"start_time": "00:00", "end_time": "06:00"}]})
>>> from datetime import datetime, UTC
>>> sat = datetime(2026, 1, 3, tzinfo=UTC)
>>> spec.contains(sat.replace(hour=5, minute=59)), spec.contains(sat.replace(hour=6))
(True, False)
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = ["NamedTimeInterval", "TimeIntervalSpec", "TimeRange", "in_any"]

_WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]
_TIME = re.compile(r"^((([01][0-9])|(2[0-3])):[0-5][0-9])$|(^24:00$)")


def _minutes(text: str) -> int:
    if not isinstance(text, str) or not _TIME.match(text):
        raise ValueError(f"couldn't parse timestamp {text}, invalid format")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class TimeRange(BaseModel):
    """``{start_time: "09:00", end_time: "17:00"}``: minutes ``[start, end)`` of the day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_time: str
    end_time: str

    @field_validator("end_time")
    @classmethod
    def _ordered(cls, end: str, info: Any) -> str:
        start = info.data.get("start_time")
        if start is None:
            return end
        if _minutes(start) >= _minutes(end):
            # Alertmanager's words, and the way out: a night window was taken for a typo
            hint = (f" (times do not wrap past midnight: {start}–24:00 in one entry, "
                    f"00:00–{end} with the next day's weekdays in another)"
                    if _minutes(start) > _minutes(end) else "")
            raise ValueError("start time cannot be equal or greater than end time" + hint)
        return end

    @field_validator("start_time")
    @classmethod
    def _valid_start(cls, start: str) -> str:
        _minutes(start)
        return start

    @property
    def start_minute(self) -> int:
        return _minutes(self.start_time)

    @property
    def end_minute(self) -> int:
        return _minutes(self.end_time)


def _range(text: Any, member: Any) -> tuple[int, int]:
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise ValueError("expected a string such as 'monday:friday' or '1:5'")
    low = text.lower()
    if ":" in low:
        parts = low.split(":")
        if len(parts) != 2:
            raise ValueError(f"couldn't parse range {text}, invalid format")
        return member(parts[0]), member(parts[1])
    value = member(low)
    return value, value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _weekday(text: str) -> int:
    if text not in _WEEKDAYS:
        raise ValueError(f"{text} is not a valid weekday")
    return _WEEKDAYS.index(text)


def _month(text: str) -> int:
    if text in _MONTHS:
        return _MONTHS.index(text) + 1
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text} is not a valid month") from None


def _parse_weekdays(text: Any) -> tuple[int, int]:
    begin, end = _range(text, _weekday)
    if begin > end:
        raise ValueError("start day cannot be before end day")
    return begin, end


def _parse_days(text: Any) -> tuple[int, int]:
    begin, end = _range(text, _int)
    for d in (begin, end):
        if d == 0 or d < -31 or d > 31:
            raise ValueError(f"{d} is not a valid day of the month: out of range")
    if begin < 0 < end:
        raise ValueError("end day must be negative if start day is negative")
    if (28 + begin if begin < 0 else begin) > (28 + end if end < 0 else end):
        raise ValueError(f"end day {end} is always before start day {begin}")
    return begin, end


def _parse_months(text: Any) -> tuple[int, int]:
    begin, end = _range(text, _month)
    for m in (begin, end):
        if not 1 <= m <= 12:
            raise ValueError(f"{m} is not a valid month: out of range")
    if begin > end:
        raise ValueError(f"end month {_MONTHS[end - 1]} is before start month "
                         f"{_MONTHS[begin - 1]}")
    return begin, end


def _parse_years(text: Any) -> tuple[int, int]:
    begin, end = _range(text, _int)
    if begin > end:
        raise ValueError(f"end year {end} is before start year {begin}")
    return begin, end


def _each(values: list[Any] | None, parse: Any) -> list[Any] | None:
    if values is None:
        return None
    for v in values:
        parse(v)
    return [str(v) for v in values]


_PARSERS = {"weekdays": _parse_weekdays, "days_of_month": _parse_days, "months": _parse_months,
            "years": _parse_years}


def _days_in_month(t: datetime) -> int:
    return calendar.monthrange(t.year, t.month)[1]


def _in_days(day: int, ranges: Iterable[tuple[int, int]], days: int) -> bool:
    for b, e in ranges:
        begin = days + b + 1 if b < 0 else b
        end = days + e + 1 if e < 0 else e
        if begin > days:
            continue
        begin, end = max(min(begin, days), -days), max(min(end, days), -days)
        if begin <= day <= end:
            return True
    return False


class TimeIntervalSpec(BaseModel):
    """One entry of a named time interval; unset fields match any time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    times: list[TimeRange] | None = None
    weekdays: list[str] | None = None
    days_of_month: list[str] | None = None
    months: list[str] | None = None
    years: list[str] | None = None
    location: str | None = None

    @field_validator("weekdays", "days_of_month", "months", "years", mode="before")
    @classmethod
    def _ranges(cls, v: Any, info: ValidationInfo) -> Any:
        return _each(v, _PARSERS[info.field_name or ""])

    @field_validator("location")
    @classmethod
    def _location(cls, v: str | None) -> str | None:
        if v is not None:
            _zone(v)
        return v

    def contains(self, t: datetime) -> bool:
        """Whether the instant ``t`` (tz-aware) falls in this interval."""
        t = t.astimezone(_zone(self.location) if self.location else UTC)
        if self.times is not None:
            minute = t.hour * 60 + t.minute
            if not any(r.start_minute <= minute < r.end_minute for r in self.times):
                return False
        if self.days_of_month is not None:
            ranges = [_parse_days(d) for d in self.days_of_month]
            if not _in_days(t.day, ranges, _days_in_month(t)):
                return False
        weekday = (t.weekday() + 1) % 7  # Go: Sunday = 0
        fields = ((self.months, _parse_months, t.month), (self.weekdays, _parse_weekdays, weekday),
                  (self.years, _parse_years, t.year))
        for values, parse, at in fields:
            if values is not None and not any(b <= at <= e for b, e in map(parse, values)):
                return False
        return True


def _zone(name: str) -> tzinfo:
    if name in ("UTC", ""):
        return UTC
    if name == "Local":
        return datetime.now().astimezone().tzinfo or UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name}") from None


class NamedTimeInterval(BaseModel):
    """``time_intervals: [{name: offhours, time_intervals: [...]}]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    time_intervals: list[TimeIntervalSpec] = Field(default_factory=list)

    def contains(self, t: datetime) -> bool:
        return any(spec.contains(t) for spec in self.time_intervals)


def in_any(names: Sequence[str], intervals: Mapping[str, NamedTimeInterval], t: datetime) -> bool:
    """Whether ``t`` is in any of the named intervals."""
    return any(intervals[n].contains(t) for n in names if n in intervals)
