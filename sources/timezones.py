"""The ``timezone:`` option of sources that read naive text timestamps (``files``,
``http_json``): one validator and one way to apply it, so the sources agree.

Why: exports of BI tools and Lookout for Metrics data sets are often written in local time
(``2026-03-02 09:00`` meaning Berlin time); read as UTC they were shifted by an hour or two,
and an anomaly's time with them.
"""

from __future__ import annotations

import logging
from collections import Counter

import pandas as pd
from pydantic import BaseModel, Field, field_validator

from monitor.frames import DateOrder, to_utc
from monitor.zones import known_zone

log = logging.getLogger(__name__)


class LocalTimes(BaseModel):
    """The options of a source whose timestamps may be local text: ``timezone`` and
    ``date_order`` (a mixin of the files and http_json sources' configs)."""

    timezone: str = Field("UTC", description="IANA zone of naive timestamps (zoned ones keep "
                          "their offset; Unix times are UTC)")
    date_order: DateOrder | None = Field(
        None, description="How to read numeric dates with the year last: dmy (04/05/2026 = 4 "
        "May) or mdy (= April 5). Unset: such dates are rejected as ambiguous_date, never "
        "guessed.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    def converts_times(self) -> bool:
        """Whether the source hands the tick UTC times rather than the raw column (the tick
        would read naive text as UTC and year-last dates as ambiguous)."""
        return self.timezone != "UTC" or self.date_order is not None


AMBIGUOUS_HINT = ("dates such as 04/05/2026 are ambiguous: set date_order: dmy (4 May) or mdy "
                  "(April 5) on the source, or export ISO 8601")


def parse_times(col: pd.Series, tz: str, dst: Counter[str], *, source: str,
                where: str, date_order: DateOrder | None = None) -> pd.Series:
    """``col`` as UTC times, naive ones taken in ``tz``; clock-change decisions are added to
    ``dst`` and logged (an ambiguous time taken at its first occurrence, a nonexistent one
    shifted forward), so a shifted row can be traced rather than silently moved."""
    seen: Counter[str] = Counter()
    ts = to_utc(col, tz, seen, date_order)
    if seen:
        dst.update(seen)
        log.info("source %s: %s: naive times in %s at a clock change: %s", source, where, tz,
                 ", ".join(f"{n} {_WHAT[k]}" for k, n in sorted(seen.items())))
    return ts


_WHAT = {"ambiguous": "in the repeated hour (taken at its first occurrence)",
         "nonexistent": "in the skipped hour (shifted forward)"}
