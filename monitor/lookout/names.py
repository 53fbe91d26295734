"""Names and identifiers: Lookout's free-form names made valid for cxmon (metrics, labels,
environment variables) and for SQL (quoted only when they need it).
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_METRIC_BAD = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")
_SIMPLE_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def metric_name(text: str) -> str:
    """A cxmon metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) from any text."""
    name = _METRIC_BAD.sub("_", text).strip("_") or "metric"
    return name if re.match(r"[a-zA-Z_:]", name) else "_" + name


def label_name(text: str) -> str:
    """A label name ([a-zA-Z_][a-zA-Z0-9_]*) from any text: lower case, ``_`` for the rest."""
    name = _LABEL_BAD.sub("_", text).strip("_").lower() or "dim"
    return name if re.match(r"[a-zA-Z_]", name) else "_" + name


def env_name(*parts: str) -> str:
    return "_".join(_LABEL_BAD.sub("_", p).strip("_").upper() for p in parts if p)


def _known_zone(name: str) -> bool:
    """An IANA time zone name this machine knows (a typo stays a note, not SQL)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _ident(column: str, quote: str = '"') -> str:
    """A column or table name for SQL: bare when simple, else quoted with ``quote`` (``"`` is
    ANSI, as PostgreSQL and Redshift read it; MySQL reads backticks).

    >>> _ident("order date"), _ident("order date", "`"), _ident("sales.orders")
    ('"order date"', '`order date`', 'sales.orders')
    """
    if all(_SIMPLE_IDENT.match(part) for part in column.split(".")):
        return column
    return quote + column.replace(quote, quote * 2) + quote

