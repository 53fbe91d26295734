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

Days are local dates in the calendar's ``timezone``; a bucket belongs to the day its middle
falls on there (the same as its start for hourly buckets; for daily buckets, which start at
midnight UTC, the local day most of the bucket covers: the UTC day of Thanksgiving starts at
19:00 the evening before in New York). Holidays come from the ``holidays`` package (country
codes, optionally with a subdivision: ``GB-SCT``, ``US-CA``), events from the config.
``by: {label: region, values: {de: {...}}}`` gives the series of each listed value a calendar
of their own (a German holiday is a German series' business, not the UK's); a total over the
label's values follows all of them (:class:`CombinedCalendar`), and other series the top-level
calendar.

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

import copy
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from monitor.zones import known_zone

__all__ = [
    "BusinessCalendar",
    "CalendarBy",
    "CalendarConfig",
    "CalendarDay",
    "CalendarEvent",
    "CalendarRules",
    "Calendars",
    "DayMode",
    "NamedDays",
]

DayMode = Literal["skip", "score"]


class NamedDays(BaseModel):
    """Named whole days: ``{name: black_friday, start: 2026-11-27, end: 2026-11-30}``
    (inclusive dates; without ``end``, the one day ``start``). Shared by the calendar's events
    and Prophet's ``events``, so both read and check dates alike."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    start: date
    end: date = Field(  # type: ignore[assignment]  # filled in from start when absent
        None, description="Last day, inclusive (default: start, a one-day event).")

    @model_validator(mode="before")
    @classmethod
    def _one_day(cls, data: object) -> object:
        # {name: Black Friday, start: 2026-11-27} is the one day: an analyst writes no end
        start = data.get("start") if isinstance(data, dict) else None
        if isinstance(data, dict) and data.get("end") is None and (
                (isinstance(start, date) and not isinstance(start, datetime))
                or (isinstance(start, str) and _is_date(start))):
            return {**data, "end": data["start"]}
        return data

    @field_validator("start", "end", mode="before")
    @classmethod
    def _a_date(cls, value: object) -> object:
        # events are whole local days: a time of day (or 27/11/2026) would otherwise get
        # pydantic's "Datetimes provided to dates should have zero time"
        if isinstance(value, datetime) or (isinstance(value, str) and not _is_date(value)):
            raise ValueError(
                f"{str(value)!r} is not a date: give YYYY-MM-DD (events are whole local days; "
                "one that runs past midnight covers both dates)")
        return value

    @field_validator("end")
    @classmethod
    def _ordered(cls, end: date, info: ValidationInfo) -> date:
        start = info.data.get("start")
        if start is not None and end < start:
            raise ValueError(f"end ({end}) is before start ({start})")
        return end


class CalendarEvent(NamedDays):
    """A calendar event, optionally with its own ``mode``."""

    mode: DayMode | None = Field(None, description="skip or score (default: the calendar's "
                                 "mode).")


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text.strip())
    except ValueError:
        return False
    return True


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
        raise ValueError(f"unknown holidays country {code!r}{_country_hint(code)} (a code such "
                         "as GB, US, DE)")
    if subdiv is not None and subdiv not in supported[country]:
        known = supported[country]
        raise ValueError(f"unknown subdivision {subdiv!r} of {country} (known: "
                         f"{', '.join(known[:12]) or 'none'}{', ...' if len(known) > 12 else ''})")
    return code.strip().upper()


def _country_hint(name: str) -> str:
    """``"; did you mean DE?"`` for a country's English name (``Germany``, ``united
    kingdom``); ``""`` when it is none."""
    import difflib

    from holidays.registry import COUNTRIES

    by_name = {key.replace("_", ""): entry[1] for key, entry in COUNTRIES.items()}
    wanted = "".join(ch for ch in name.lower() if ch.isalpha())
    if wanted in by_name:
        return f"; did you mean {by_name[wanted]}?"
    close = difflib.get_close_matches(wanted, list(by_name), n=1, cutoff=0.85)
    return f"; did you mean {by_name[close[0]]}?" if close else ""


def _not_yaml_boolean(value: object) -> object:
    # holidays: [NO] is [false] to YAML (Norway's code, like ON, YES, Y and N)
    if isinstance(value, bool):
        raise ValueError(f"YAML reads this code as {str(value).lower()}, not text: quote it "
                         "(holidays: [\"NO\"])")
    return value


HolidayRegion = Annotated[str, BeforeValidator(_not_yaml_boolean),
                          AfterValidator(_known_region)]


class CalendarRules(BaseModel):
    """One calendar: a time zone, its holidays and events, and what detectors do on them."""

    model_config = ConfigDict(extra="forbid")
    timezone: str = Field("UTC", description="IANA time zone of the calendar's dates, e.g. "
                          "Europe/London.")
    holidays: list[HolidayRegion] = Field(
        default_factory=list,
        description="Countries whose public holidays count, e.g. [GB] or [US-CA] (with a "
                    "subdivision).")
    ignore: list[str] = Field(
        default_factory=list,
        description="Holidays that are ordinary business days here, by name as `cxmon "
                    "calendar` lists them, e.g. [Columbus Day, Veterans Day] (their observed "
                    "days too).")
    events: list[CalendarEvent] = Field(default_factory=list, description="Custom days.")
    mode: DayMode = Field("skip", description="What detectors do on a holiday, and on an "
                          "event without its own mode: skip (neither scored nor learned) or "
                          "score (scored and alerted, not learned).")

    @field_validator("holidays", "ignore", "events", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: object) -> object:
        # holidays: GB (as a prophet detector takes it), one event without [ ]; holidays: NO
        # (a YAML boolean) gets the same hint as inside a list
        return [value] if isinstance(value, str | Mapping | bool) else value

    @field_validator("ignore")
    @classmethod
    def _known_holidays(cls, names: list[str], info: ValidationInfo) -> list[str]:
        # a name no listed country has (a typo, or "Columbus day" of DE) would ignore nothing;
        # every such name is reported at its own position (calendar.ignore[1]), not the first
        codes = info.data.get("holidays")
        if codes is None:  # the holidays are invalid: reported on their own
            return names
        known = _holiday_names(tuple(codes))
        bases = {_base_name(k) for k in known}
        problems = [
            InitErrorDetails(type=PydanticCustomError("value_error", "{msg}",
                                                      {"msg": _unknown_holiday(name, codes,
                                                                               known)}),
                             loc=(i,), input=name)
            for i, name in enumerate(names) if _base_name(name) not in bases]
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return names

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)


def _unknown_holiday(name: str, codes: Collection[str], known: Collection[str]) -> str:
    """What to say about an ``ignore`` entry that names no holiday of ``codes``."""
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (f"no holiday of {', '.join(codes) or 'no country'} is called {name!r}{hint} "
            "(`cxmon calendar` lists their names)")


def _base_name(name: str) -> str:
    """``"Christmas Day (observed)"`` -> ``"christmas day"``."""
    name = name.strip().casefold()
    return name.removesuffix("(observed)").strip()


def _ignores(ignore: list[str], name: str) -> bool:
    """Whether ``ignore`` leaves out the holiday ``name``: ``Boxing Day`` leaves out the day
    and the day it is observed on, ``Boxing Day (observed)`` only the observed day."""
    names = {n.strip().casefold() for n in ignore}
    name = name.strip().casefold()
    return name in names or _base_name(name) in names


@lru_cache(maxsize=64)
def _holiday_names(codes: tuple[str, ...]) -> frozenset[str]:
    """Every holiday name of ``codes`` from last year to two years ahead."""
    import holidays as hol

    this = datetime.now(UTC).year
    names: set[str] = set()
    for code in codes:
        country, subdiv = _split_region(code)
        for name in hol.country_holidays(country, subdiv=subdiv,
                                         years=range(this - 1, this + 3)).values():
            names.update(n.strip() for n in name.split(";"))
    return frozenset(names)


class CalendarBy(BaseModel):
    """Calendars by a label's value: ``{label: region, values: {de: {holidays: [DE], ...}}}``."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", description="The label whose value "
                       "picks the calendar (a dimension or split_by label, e.g. region).")
    values: dict[str, CalendarRules] = Field(min_length=1, description="A calendar per value; "
                                             "other values, and series without the label "
                                             "elsewhere keep the top-level one; totals over the "
                                             "label follow every value's.")


    @field_validator("values", mode="before")
    @classmethod
    def _text_keys(cls, values: object) -> object:
        # values: {no: {...}} is {false: {...}} to YAML: no series' label value is "False"
        if not isinstance(values, Mapping):
            return values
        for key in values:
            what = ("the boolean " + str(key).lower() + " (no, off, yes, on, ...)"
                    if isinstance(key, bool) else "null" if key is None
                    else f"the number {key}" if isinstance(key, float) else None)
            if what is not None:
                raise ValueError(f"a key YAML reads as {what}, not as a label value: quote it "
                                 "as in the data ('no': {holidays: [\"NO\"]})")
        return {str(k): v for k, v in values.items()}


class CalendarConfig(CalendarRules):
    """The top-level ``calendar:`` section: one calendar, optionally others by a label."""

    by: CalendarBy | None = Field(None, description="Different calendars for the series of "
                                  "each value of a label (countries of a region dimension).")


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """What the calendar says of one local date."""

    name: str
    mode: DayMode


class BusinessCalendar:
    """Answers "is this bucket on a calendar day, and which?"; holidays are looked up once
    per year and date."""

    def __init__(self, config: CalendarRules) -> None:
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self._day = lru_cache(maxsize=4096)(self._compute)
        self._years: dict[int, dict[date, str]] = {}

    def day_at(self, ts: datetime) -> CalendarDay | None:
        """The calendar day of the local date of ``ts`` (tz-aware), or None. Callers ask it of
        a bucket's middle (monitor/detection.py), so that a daily bucket, midnight to midnight
        UTC, counts as the local day it mostly covers, east or west of UTC.

        >>> ny = BusinessCalendar(CalendarRules(timezone="America/New_York", holidays=["US"]))
        >>> thanksgiving = datetime(2026, 11, 26, tzinfo=UTC)  # 19:00 on the 25th in New York
        >>> ny.day_at(thanksgiving), ny.day_at(thanksgiving + timedelta(days=1) / 2)
        (None, CalendarDay(name='Thanksgiving Day', mode='skip'))
        """
        return self._day(ts.astimezone(self.zone).date())

    def skips(self, ts: datetime) -> bool:
        """Whether ``ts`` (a bucket's middle) is on a ``skip`` day: nothing is alerted then,
        not even data that stopped (reported after the day if it has not come back)."""
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
        # an event wins over a holiday on the same date: it was named for this business; of
        # overlapping events the shortest (the first listed of equal ones), so a Cyber Monday
        # inside a Black Friday weekend is named and keeps its own mode
        on = [e for e in self.config.events if e.start <= d <= e.end]
        if on:
            event = min(on, key=lambda e: e.end - e.start)
            return CalendarDay(event.name, event.mode or self.config.mode)
        name = self._holidays(d.year).get(d)
        return CalendarDay(name, self.config.mode) if name else None

    def _ignored(self, name: str) -> bool:
        return all(_ignores(self.config.ignore, part) for part in name.split(";"))

    def _holidays(self, year: int) -> dict[date, str]:
        if year not in self._years:
            import holidays as hol

            names: dict[date, str] = {}
            for code in self.config.holidays:
                country, subdiv = _split_region(code)
                for d, name in hol.country_holidays(country, subdiv=subdiv, years=year).items():
                    if not self._ignored(name):
                        names.setdefault(d, name)
            self._years[year] = names
        return self._years[year]

    def __repr__(self) -> str:
        c = self.config
        return (f"BusinessCalendar(timezone={c.timezone!r}, holidays={c.holidays!r}, "
                f"events={len(c.events)}, mode={c.mode!r})")


class CombinedCalendar:
    """The calendar of a series summed over the ``by`` label's values (a roll-up total over
    regions): a calendar day when any part has one, the strongest mode winning (skip over
    score), named after the part it comes from: ``German Unity Day (region=de)``. Why: a
    German holiday moves the total too; learned, it would pull the total's baseline, and
    scored as an ordinary day, the total alerts on it."""

    def __init__(self, parts: list[tuple[str, BusinessCalendar]]) -> None:
        self.parts = parts
        self.zone = parts[0][1].zone  # for dates people read: the top-level calendar's
        self.config = parts[0][1].config

    def day_at(self, ts: datetime) -> CalendarDay | None:
        """The strongest calendar day of the parts at ``ts``, or None."""
        best: CalendarDay | None = None
        for where, cal in self.parts:
            day = cal.day_at(ts)
            if day is not None and (best is None or (day.mode == "skip" and best.mode != "skip")):
                best = CalendarDay(f"{day.name} ({where})" if where else day.name, day.mode)
        return best

    def day_at_ns(self, ts_ns: int) -> CalendarDay | None:
        """:meth:`day_at` for UTC nanoseconds."""
        return self.day_at(datetime.fromtimestamp(ts_ns // 1000 / 1e6, UTC))

    def skips(self, ts: datetime) -> bool:
        """Whether some part makes ``ts`` (a bucket's middle) a ``skip`` day."""
        day = self.day_at(ts)
        return day is not None and day.mode == "skip"


class Calendars:
    """The calendar of each series: the top-level one, or the one of its ``by`` label's value.

    >>> cals = Calendars(CalendarConfig.model_validate({"holidays": ["GB"], "by": {
    ...     "label": "region", "values": {"de": {"holidays": ["DE"],
    ...                                          "timezone": "Europe/Berlin"}}}}))
    >>> from datetime import datetime, UTC
    >>> unity = datetime(2026, 10, 3, 12, tzinfo=UTC)  # German Unity Day
    >>> [cals.of({"region": r}).day_at(unity) for r in ("de", "uk")]
    [CalendarDay(name='German Unity Day', mode='skip'), None]
    >>> cals.where({"region": "de"}), cals.where({})
    ('region=de', '')

    A value's calendar takes the keys it does not set from the top-level one:

    >>> cals = Calendars(CalendarConfig.model_validate({"events": [{"name": "Sale",
    ...     "start": "2026-11-27"}], "by": {"label": "region", "values": {
    ...     "de": {"timezone": "Europe/Berlin"}, "us": {"events": []}}}}))
    >>> sale = datetime(2026, 11, 27, 12, tzinfo=UTC)
    >>> [cals.of({"region": r}).day_at(sale) for r in ("de", "us")]
    [CalendarDay(name='Sale', mode='skip'), None]
    """

    def __init__(self, config: CalendarConfig) -> None:
        self.config = config
        self.default = BusinessCalendar(config)
        by = config.by
        self.label = by.label if by is not None else None
        self._by = {v: BusinessCalendar(self._inherit(config, r))
                    for v, r in by.values.items()} if by else {}
        #: whether series without the label are totals over its values (a dimension of the
        #: metric), which then follow every value's calendar (:class:`CombinedCalendar`)
        self.rolled_up = False
        self._combined = CombinedCalendar(self.all()) if self._by else None

    def for_dimensions(self, dimensions: Collection[str]) -> Calendars:
        """The same calendars for a metric whose rolled-up ``dimensions`` are these (shared:
        holidays are still looked up once)."""
        view = copy.copy(self)
        view.rolled_up = self.label is not None and self.label in dimensions
        return view

    @staticmethod
    def _inherit(top: CalendarConfig, own: CalendarRules) -> CalendarRules:
        """A value's calendar: the keys it sets, the top-level calendar's for the others (a
        Black Friday given once applies to every country; ``events: []`` opts out)."""
        fields = {k: getattr(top, k) for k in CalendarRules.model_fields}
        fields.update({k: getattr(own, k) for k in own.model_fields_set})
        return CalendarRules.model_construct(**fields)

    def of(self, labels: Mapping[str, str]) -> BusinessCalendar | CombinedCalendar:
        """The calendar of a series with ``labels``."""
        if self.label is None:
            return self.default
        if self.label in labels:
            return self._by.get(str(labels[self.label]), self.default)
        return self._combined if self.rolled_up and self._combined else self.default

    def where(self, labels: Mapping[str, str]) -> str:
        """``region=de`` when the series has a calendar of its own, ``region=any`` for a total
        over the label's values (rolled up), else ``""``."""
        if self.label is None:
            return ""
        if self.label not in labels:
            return f"{self.label}=any" if self.rolled_up and self._combined else ""
        return f"{self.label}={labels[self.label]}" if str(labels[self.label]) in self._by \
            else ""

    def combined(self, values: Collection[str]) -> CombinedCalendar:
        """The calendar of totals over the label, from the top-level calendar and those of
        ``values`` (the ones the series have: a listed value no series has moves no total)."""
        return CombinedCalendar([("", self.default)] + [
            (f"{self.label}={v}", c) for v, c in self._by.items() if v in values])

    def series_calendars(self) -> list[tuple[str, BusinessCalendar | CombinedCalendar]]:
        """:meth:`all`, plus (last) the combined calendar of totals when the label is rolled
        up: of every value, until :meth:`combined` narrows it to the values seen."""
        extra: list[tuple[str, BusinessCalendar | CombinedCalendar]] = []
        if self.rolled_up and self._combined is not None:
            extra.append((f"{self.label}=any", self._combined))
        return [*self.all(), *extra]

    def values(self) -> list[str]:
        """The ``by`` label's values that have a calendar of their own."""
        return list(self._by)

    def all(self) -> list[tuple[str, BusinessCalendar]]:
        """Every calendar with where it applies (``""``: the top-level one)."""
        return [("", self.default)] + [(f"{self.label}={v}", c) for v, c in self._by.items()]
