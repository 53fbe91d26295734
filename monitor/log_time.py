"""Log times in UTC. Every time inside cxmon's messages is UTC (``11-28 07:00``, tick ranges),
so a log line stamped in the machine's local time (a laptop in New York: ``07:46`` beside a
tick of ``12:00..13:00``) read as an hours-late tick."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from rich.text import Text


def utc_stamp(created: float) -> str:
    """A record's time as ISO 8601 UTC with milliseconds, the JSON logs' ``time`` too.

    >>> utc_stamp(0.25)
    '1970-01-01T00:00:00.250Z'
    """
    when = datetime.fromtimestamp(created, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UtcFormatter(logging.Formatter):
    """``%(asctime)s`` as :func:`utc_stamp`, whatever the machine's time zone."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_stamp(record.created)


def rich_utc_time(local: datetime) -> Text:
    """RichHandler's time column (it passes the record's naive local time) as UTC.

    >>> rich_utc_time(datetime.fromtimestamp(0)).plain
    '[00:00:00Z]'
    """
    return Text(f"[{local.astimezone(UTC):%H:%M:%S}Z]")
