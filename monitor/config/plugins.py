"""Sources and detectors validated against the config classes registered for their type.

The config names plugin types (``type: sql``); the registries know their models. This module
looks each entry up and supplies the implicit ``default`` detector."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from detectors.base import DetectorConfig
from detectors.registry import config_class as detector_config_class
from detectors.registry import detector_types
from monitor.config.validator_errors import Loc, _did_you_mean, _relocate

DEFAULT_DETECTOR_TYPE = "robust_seasonal"
"""Type of the implicit ``default`` detector, added when the user defines none of that name."""


def _validate_plugins(
    value: Any, kind: str, lookup: Callable[[str], type[BaseModel]], valid: Iterable[str]
) -> Any:
    """Validate each ``name: {type: ..., ...}`` entry against its registered config class."""
    if not isinstance(value, Mapping):
        return value  # pydantic reports "valid dictionary"
    valid = sorted(valid)
    valid_list = ", ".join(valid) or "none registered"
    out: dict[Any, Any] = {}
    errors: list[InitErrorDetails] = []

    def bad(loc: Loc, kind_: str, msg: str) -> None:
        errors.append(InitErrorDetails(type=PydanticCustomError(kind_, msg), loc=loc, input=None))

    for name, entry in value.items():
        if isinstance(entry, BaseModel):
            out[name] = entry
            continue
        if not isinstance(entry, Mapping):
            bad((name,), "model_type", f"expected a mapping with a 'type' key ({valid_list})")
            continue
        type_name = entry.get("type")
        if "type" not in entry:
            msg = f"missing required key 'type'; valid types: {valid_list}"
            bad((name, "type"), "missing", msg)
            continue
        if not isinstance(type_name, str):
            bad((name, "type"), "string_type", f"expected a {kind} type name: {valid_list}")
            continue
        try:
            cls = lookup(type_name)
        except KeyError as exc:
            msg = str(exc.args[0])
            hint = _did_you_mean(type_name, valid)  # robust_seasonl, seasonal-baseline
            if hint:
                msg = msg.replace(f"{type_name!r};", f"{type_name!r}{hint};", 1)
            bad((name, "type"), "unknown_type", msg + "none" if msg.endswith(": ") else msg)
            continue
        try:
            out[name] = cls.model_validate(entry)
        except ValidationError as exc:
            errors += _relocate(exc, (name,))
    if errors:
        raise ValidationError.from_exception_data(kind, errors)
    return out


def _default_detector() -> DetectorConfig | None:
    """The implicit ``default`` detector, or None when its type is not available."""
    if DEFAULT_DETECTOR_TYPE not in detector_types():
        return None
    try:
        return detector_config_class(DEFAULT_DETECTOR_TYPE).model_validate(
            {"type": DEFAULT_DETECTOR_TYPE}
        )
    except ValidationError:
        return None
