"""Field types and small validators the config sections share.

Metric and label name patterns, display names, duration bounds and duplicate checks live
here once, so every section refuses the same things with the same words."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from monitor.config.validator_errors import _raise

METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
LabelName = Annotated[str, Field(pattern=LABEL_NAME)]
Column = Annotated[str, Field(min_length=1)]

_STRICT = ConfigDict(extra="forbid")


def _one_line(value: str) -> str:
    """A display name is one line of text: messages put it inside a sentence or a header."""
    if not value.strip():
        raise ValueError("must not be blank")
    if "\n" in value or "\r" in value:
        raise ValueError("must be one line (no line breaks)")
    return value.strip()


#: A name people read (a metric's title, a label's or a value's display name).
DisplayName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_one_line)]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be greater than 0s")
    return value


def _non_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


def _unique(items: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    dups = []
    for i, item in enumerate(items):
        if item in seen:
            dups.append(((i,), "duplicate", f"duplicate {what} {item!r}"))
        seen.add(item)
    _raise(what, dups)
    return items
