"""Problems found inside validators, raised so pydantic keeps their structure.

pydantic relocates nested ValidationErrors, so a check on a list can point at the offending
element; these helpers build and move such errors, run structural validation and reference
checks together, and read raw YAML data or built models alike (checks run on both)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

Loc = tuple[str | int, ...]


def _raise(title: str, errors: Iterable[tuple[Loc, str, str]]) -> None:
    """Raise one ValidationError holding ``(loc, error_type, message)`` problems, if any."""
    details = [
        InitErrorDetails(type=PydanticCustomError(kind, msg), loc=loc, input=None)
        for loc, kind, msg in errors
    ]
    if details:
        raise ValidationError.from_exception_data(title, details)


def _relocate(exc: ValidationError, prefix: Loc = ()) -> list[InitErrorDetails]:
    """Copy a ValidationError's problems (type and message kept) under ``prefix``."""
    return [
        InitErrorDetails(
            type=PydanticCustomError(err["type"], err["msg"]),
            loc=(*prefix, *err["loc"]),
            input=None,  # inputs may be secrets: never carried along
        )
        for err in exc.errors(include_url=False, include_input=False)
    ]


M = TypeVar("M", bound=BaseModel)


def _validate_with_checks(
    cls: type[M],
    data: Any,
    handler: Callable[[Any], M],
    check: Callable[[Any], list[tuple[Loc, str, str]]],
) -> M:
    """Run structural validation and the reference ``check`` on the raw input independently,
    then report both together: a typo elsewhere must not hide a dangling reference."""
    if isinstance(data, cls):
        return data
    errors: list[InitErrorDetails] = []
    try:
        result = handler(data)
    except ValidationError as exc:
        errors = _relocate(exc)
    refs = check(data) if isinstance(data, Mapping) else []
    errors += [
        InitErrorDetails(type=PydanticCustomError(kind, msg), loc=loc, input=None)
        for loc, kind, msg in refs
    ]
    if errors:
        raise ValidationError.from_exception_data(cls.__name__, errors)
    return result


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    """The closest spelling, else the one choice that has ``word`` as a part: ``url`` of an
    HTTP source is its ``base_url``.

    >>> _did_you_mean("url", ["base_url", "token", "timeout"])
    " (did you mean 'base_url'?)"
    >>> _did_you_mean("id", ["user_id", "group_id"]) + _did_you_mean("colour", ["labels"])
    ''
    """
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        parts = [c for c in choices if c != word and word.lower() in c.lower().split("_")]
        close = parts if len(parts) == 1 else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """Read a key from raw YAML data or an already-built model alike."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    if isinstance(obj, BaseModel):
        return getattr(obj, key, default)
    return default


def _has(obj: Any, key: str) -> bool:
    if isinstance(obj, Mapping):
        return key in obj
    if isinstance(obj, BaseModel):
        return key in obj.model_fields_set
    return False
