"""IANA time zone names checked once, the same way everywhere a config takes one (the business
calendar, the files and http_json sources, a metric's ``timezone``): a typo such as ``Berlin``
gets ``Europe/Berlin`` suggested instead of ZoneInfo's bare "No time zone found". And the
wall clock of a zone, which seasonal detectors take their time-of-day slots from."""

from __future__ import annotations

import difflib
import zlib
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import numpy as np
import pandas as pd
from pydantic import AfterValidator


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


#: A config field holding an IANA zone name: a typo is a problem at its path, with a hint.
Zone = Annotated[str, AfterValidator(known_zone)]


def wall_clock_ns(ts: np.ndarray, zone: str) -> np.ndarray:
    """UTC instants (int64 ns) as the wall-clock times of ``zone``, also in int64 ns, so that
    ``% day`` and ``% week`` give the local time of day and of the week. Why: a shop's peaks
    follow its clocks, so in UTC they move an hour at each change of summer time; time-of-day
    and time-of-week slots taken from the wall clock stay aligned. In the hour repeated when
    clocks go back both instants get the same wall-clock time (the same slot); the skipped
    hour of spring has none. ``UTC`` returns ``ts`` itself.

    >>> import numpy as np
    >>> summer = np.array([1_782_900_000_000_000_000])  # 2026-07-01 10:00 UTC
    >>> int(wall_clock_ns(summer, "Europe/Berlin")[0] - summer[0]) // 3_600_000_000_000
    2
    """
    if zone == "UTC":
        return ts
    local = pd.DatetimeIndex(np.asarray(ts, dtype="datetime64[ns]"), tz="UTC").tz_convert(zone)
    return np.asarray(local.tz_localize(None).asi8, dtype=np.int64)


def zone_tag(zone: str) -> int:
    """One byte naming ``zone`` in a detector checkpoint (0 = UTC, what checkpoints written
    before time zones hold), so state learned on another wall clock is not reused.

    >>> zone_tag("UTC"), zone_tag("Europe/Berlin") != zone_tag("America/New_York")
    (0, True)
    """
    return 0 if zone == "UTC" else 1 + zlib.crc32(zone.encode()) % 255
