"""IANA time zone names checked once, the same way everywhere a config takes one (the business
calendar, the files and http_json sources): a typo such as ``Berlin`` gets ``Europe/Berlin``
suggested instead of ZoneInfo's bare "No time zone found"."""

from __future__ import annotations

import difflib
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


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
