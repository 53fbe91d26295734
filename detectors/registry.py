"""Registry of detector types keyed by the config's ``type:``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from detectors.base import Detector, DetectorConfig

_TYPES: dict[str, type[Detector]] = {}
D = TypeVar("D", bound=type[Detector])


def register(type_name: str) -> Callable[[D], D]:
    """Class decorator: make a detector available as ``type: <type_name>``."""

    def deco(cls: D) -> D:
        if type_name in _TYPES:
            raise ValueError(f"detector type {type_name!r} registered twice")
        cls.type_name = type_name
        _TYPES[type_name] = cls
        return cls

    return deco


def detector_types() -> dict[str, type[Detector]]:
    """All registered detector types."""
    return dict(_TYPES)


def config_class(type_name: str) -> type[DetectorConfig]:
    """The config class of a type; ``KeyError`` lists the valid types."""
    try:
        return _TYPES[type_name].Config
    except KeyError:
        valid = ", ".join(sorted(_TYPES))
        raise KeyError(f"unknown detector type {type_name!r}; valid types: {valid}") from None


def create(config: DetectorConfig | dict[str, Any], *, interval: timedelta) -> Detector:
    """Instantiate a detector from a config object or a plain dict with ``type``."""
    if isinstance(config, dict):
        cls = _TYPES.get(config.get("type", ""))
        if cls is None:
            config_class(str(config.get("type")))  # raises with the valid list
            raise AssertionError  # pragma: no cover
        config = cls.Config.model_validate(config)
    return _TYPES[config.type](config, interval=interval)
