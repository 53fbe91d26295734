"""Registry of source types keyed by the config's ``type:``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from sources.base import Source, SourceConfig

_TYPES: dict[str, type[Source]] = {}
S = TypeVar("S", bound=type[Source])


def register(type_name: str) -> Callable[[S], S]:
    """Class decorator: make a source available as ``type: <type_name>``."""

    def deco(cls: S) -> S:
        if type_name in _TYPES:
            raise ValueError(f"source type {type_name!r} registered twice")
        cls.type_name = type_name
        _TYPES[type_name] = cls
        return cls

    return deco


def source_types() -> dict[str, type[Source]]:
    """All registered source types."""
    return dict(_TYPES)


def config_class(type_name: str) -> type[SourceConfig]:
    """The config class of a type; ``KeyError`` lists the valid types."""
    try:
        return _TYPES[type_name].Config
    except KeyError:
        valid = ", ".join(sorted(_TYPES))
        raise KeyError(f"unknown source type {type_name!r}; valid types: {valid}") from None


def params_class(type_name: str) -> type[BaseModel] | None:
    """The model of a metric's ``params`` for a source type (None: unchecked, or unknown
    type, which is reported on its own)."""
    cls = _TYPES.get(type_name)
    return cls.Params if cls is not None else None


def create(name: str, config: SourceConfig) -> Source:
    """Instantiate a configured source."""
    return _TYPES[config.type](name, config)
