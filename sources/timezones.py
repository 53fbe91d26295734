"""The ``timezone:`` option of sources that read naive text timestamps (``files``,
``http_json``): one validator and one way to apply it, so the sources agree.

Why: exports of BI tools and Lookout for Metrics data sets are often written in local time
(``2026-03-02 09:00`` meaning Berlin time); read as UTC they were shifted by an hour or two,
and an anomaly's time with them.
"""

from __future__ import annotations

import difflib
import logging
from collections import Counter
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pandas as pd

from monitor.frames import to_utc

log = logging.getLogger(__name__)


def known_zone(value: str) -> str:
    """``value`` if it is an IANA time zone name, else a ValueError with a did-you-mean.

    >>> known_zone("Europe/Berlin")
    'Europe/Berlin'
    >>> known_zone("Berlin")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown time zone 'Berlin'; did you mean Europe/Berlin? (an IANA name ...)
    """
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        zones = sorted(available_timezones())
        close = ([z for z in zones if z.lower().endswith("/" + value.lower())][:1]
                 or difflib.get_close_matches(value, zones, n=1))
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"unknown time zone {value!r}{hint} (an IANA name such as "
                         "Europe/London or America/New_York)") from None
    return value


def parse_times(col: pd.Series, tz: str, dst: Counter[str], *, source: str,
                where: str) -> pd.Series:
    """``col`` as UTC times, naive ones taken in ``tz``; clock-change decisions are added to
    ``dst`` and logged (an ambiguous time taken at its first occurrence, a nonexistent one
    shifted forward), so a shifted row can be traced rather than silently moved."""
    seen: Counter[str] = Counter()
    ts = to_utc(col, tz, seen)
    if seen:
        dst.update(seen)
        log.info("source %s: %s: naive times in %s at a clock change: %s", source, where, tz,
                 ", ".join(f"{n} {_WHAT[k]}" for k, n in sorted(seen.items())))
    return ts


_WHAT = {"ambiguous": "in the repeated hour (taken at its first occurrence)",
         "nonexistent": "in the skipped hour (shifted forward)"}
