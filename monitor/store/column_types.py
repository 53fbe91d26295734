"""Column types that make both backends agree: tz-aware UTC timestamps and JSON.

SQLite has no time zones and no JSONB; these types hide the difference, and refuse naive
datetimes, so every table and query in the store sees the same Python values."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator


def _require_aware(value: datetime, what: str = "timestamp") -> datetime:
    """The instant as UTC; naive datetimes are a bug upstream, so they are refused."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be tz-aware (UTC), got naive {value.isoformat()}")
    out = value.astimezone(UTC)
    if isinstance(out, pd.Timestamp):
        out = out.to_pydatetime()
    return out


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps that are UTC in the database and tz-aware UTC in Python.

    SQLite has no time zones, so the UTC wall time is stored naive and the zone re-attached
    on the way out; PostgreSQL uses ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = _require_aware(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
