"""The business calendar: public holidays and events on which a metric's detectors should not
behave as on an ordinary day.

Why: the fast seasonal detectors learn a time-of-week baseline. On Christmas Day the stores
are shut and the contact centre is half staffed: scored against an ordinary Friday, every
series of the journey is an anomaly, and, learned, that day pulls the baseline down for the
weeks after it. Prophet models holidays itself, from past years; the other detectors cannot,
so the calendar tells them which days to treat apart, in one of two ways:

* ``skip``: the day is neither scored nor learned (no alerts; the baseline stays the one of
  ordinary days). For closures and public holidays.
* ``score``: the day is scored and alerted as usual, but not learned. For events you still
  want alerts on (a sale: checkout breaking on Black Friday matters most) without the event
  becoming the next week's normal.

Days are local dates in the calendar's ``timezone`` (a bucket belongs to the day its start
falls on there). Holidays come from the ``holidays`` package (country codes, optionally with a
subdivision: ``GB-SCT``, ``US-CA``), events from the config.

>>> cal = BusinessCalendar(CalendarConfig.model_validate({
...     "timezone": "Europe/London", "holidays": ["GB"],
...     "events": [{"name": "Black Friday", "start": "2026-11-27", "end": "2026-11-27",
...                 "mode": "score"}]}))
>>> from datetime import datetime, UTC
>>> cal.day_at(datetime(2026, 12, 25, 9, tzinfo=UTC))
CalendarDay(name='Christmas Day', mode='skip')
>>> cal.day_at(datetime(2026, 11, 27, 23, 30, tzinfo=UTC))  # 23:30 UTC = 23:30 in London
CalendarDay(name='Black Friday', mode='score')
>>> cal.day_at(datetime(2026, 11, 28, 0, 30, tzinfo=UTC)) is None
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

__all__ = ["BusinessCalendar", "CalendarConfig", "CalendarDay", "CalendarEvent", "DayMode"]

DayMode = Literal["skip", "score"]


class CalendarEvent(BaseModel):
    """A custom calendar entry: ``{name: black_friday, start: 2026-11-27, end: 2026-11-30}``
    (inclusive local dates), optionally with its own ``mode``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    start: date
    end: date
    mode: DayMode | None = Field(None, description="skip or score (default: the calendar's "
                                 "mode).")

    @field_validator("end")
    @classmethod
    def _ordered(cls, end: date, info: ValidationInfo) -> date:
        start = info.data.get("start")
        if start is not None and end < start:
            raise ValueError(f"end ({end}) is before start ({start})")
        return end


def _split_region(code: str) -> tuple[str, str | None]:
    """``"GB-SCT"`` -> ``("GB", "SCT")``; ``"us"`` -> ``("US", None)``."""
    country, _, subdiv = code.strip().upper().partition("-")
    return country, subdiv or None


def _known_region(code: str) -> str:
    """A holidays region code, upper-cased, or a ValueError naming what is known."""
    import holidays as hol

    supported = hol.list_supported_countries()
    country, subdiv = _split_region(code)
    if country not in supported:
        raise ValueError(f"unknown holidays country {code!r} (a code such as GB, US, DE)")
    if subdiv is not None and subdiv not in supported[country]:
        known = supported[country]
        raise ValueError(f"unknown subdivision {subdiv!r} of {country} (known: "
                         f"{', '.join(known[:12]) or 'none'}{', ...' if len(known) > 12 else ''})")
    return code.strip().upper()


HolidayRegion = Annotated[str, AfterValidator(_known_region)]


class CalendarConfig(BaseModel):
    """The top-level ``calendar:`` section."""

    model_config = ConfigDict(extra="forbid")
    timezone: str = Field("UTC", description="IANA time zone of the calendar's dates, e.g. "
                          "Europe/London.")
    holidays: list[HolidayRegion] = Field(
        default_factory=list,
        description="Countries whose public holidays count, e.g. [GB] or [US-CA] (with a "
                    "subdivision).")
    events: list[CalendarEvent] = Field(default_factory=list, description="Custom days.")
    mode: DayMode = Field("skip", description="What detectors do on a holiday, and on an "
                          "event without its own mode: skip (neither scored nor learned) or "
                          "score (scored and alerted, not learned).")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; give an IANA name such as "
                             "Europe/London or America/New_York") from None
        return value


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """What the calendar says of one local date."""

    name: str
    mode: DayMode


class BusinessCalendar:
    """Answers "is this bucket on a calendar day, and which?"; holidays are looked up once
    per year and date."""

    def __init__(self, config: CalendarConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self._day = lru_cache(maxsize=4096)(self._compute)
        self._years: dict[int, dict[date, str]] = {}

    def day_at(self, ts: datetime) -> CalendarDay | None:
        """The calendar day a bucket starting at ``ts`` (tz-aware) falls on, or None."""
        return self._day(ts.astimezone(self.zone).date())

    def skips(self, ts: datetime) -> bool:
        """Whether the bucket starting at ``ts`` is on a ``skip`` day: nothing is alerted
        then, not even data that stopped (reported after the day if it has not come back)."""
        day = self.day_at(ts)
        return day is not None and day.mode == "skip"

    def day_at_ns(self, ts_ns: int) -> CalendarDay | None:
        """:meth:`day_at` for UTC nanoseconds (the unit of detector batches)."""
        return self.day_at(datetime.fromtimestamp(ts_ns // 1000 / 1e6, UTC))

    def days(self, start: date, end: date) -> Iterator[tuple[date, CalendarDay]]:
        """Every calendar day in ``[start, end]`` (local dates), in order."""
        d = start
        while d <= end:
            if (day := self._day(d)) is not None:
                yield d, day
            d += timedelta(days=1)

    def _compute(self, d: date) -> CalendarDay | None:
        # an event wins over a holiday on the same date: it was named for this business
        for event in self.config.events:
            if event.start <= d <= event.end:
                return CalendarDay(event.name, event.mode or self.config.mode)
        name = self._holidays(d.year).get(d)
        return CalendarDay(name, self.config.mode) if name else None

    def _holidays(self, year: int) -> dict[date, str]:
        if year not in self._years:
            import holidays as hol

            names: dict[date, str] = {}
            for code in self.config.holidays:
                country, subdiv = _split_region(code)
                for d, name in hol.country_holidays(country, subdiv=subdiv, years=year).items():
                    names.setdefault(d, name)
            self._years[year] = names
        return self._years[year]

    def __repr__(self) -> str:
        c = self.config
        return (f"BusinessCalendar(timezone={c.timezone!r}, holidays={c.holidays!r}, "
                f"events={len(c.events)}, mode={c.mode!r})")


def calendar_from(raw: Any) -> BusinessCalendar | None:
    """A calendar from a config section (a :class:`CalendarConfig`, a dict, or None)."""
    if raw is None:
        return None
    cfg = raw if isinstance(raw, CalendarConfig) else CalendarConfig.model_validate(raw)
    return BusinessCalendar(cfg)
