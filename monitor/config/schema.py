"""The config's JSON Schema, for editors that complete and check the YAML.

Built from the source and detector types registered at call time, so plugins appear in it."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from detectors.registry import detector_types
from monitor.config.root import MonitorConfig
from monitor.durations import format_duration
from sources.registry import source_types


def _plugin_union(classes: list[type[BaseModel]]) -> Any:
    if not classes:
        return Any  # replaced below by a schema that accepts nothing
    union = Union[tuple(classes)]  # noqa: UP007 - built from a runtime tuple
    return Annotated[union, Field(discriminator="type")]


def _readable_duration_defaults(node: Any) -> None:
    """pydantic writes timedelta defaults as ISO 8601 (``PT5M``); the config says ``5m``."""
    if isinstance(node, dict):
        default = node.get("default")
        if "(ms|s|m|h|d|w|y)" in str(node.get("pattern")) and isinstance(default, str):
            with contextlib.suppress(ValidationError):
                node["default"] = format_duration(_TIMEDELTA.validate_python(default))
        for value in node.values():
            _readable_duration_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _readable_duration_defaults(value)


_TIMEDELTA = TypeAdapter(timedelta)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of the config for editors, built from the types registered right now."""
    source_classes = [cls.Config for _, cls in sorted(source_types().items())]
    detector_classes = [cls.Config for _, cls in sorted(detector_types().items())]
    schema_model = create_model(
        "MonitorConfig",
        __base__=MonitorConfig,
        __doc__=MonitorConfig.__doc__,
        sources=(dict[str, _plugin_union(source_classes)], ...),
        detectors=(dict[str, _plugin_union(detector_classes)], {}),
    )
    schema = schema_model.model_json_schema()
    _readable_duration_defaults(schema)
    schema["properties"]["include"] = {  # read before validation (monitor/config/includes.py)
        "description": "Globs (relative to this file's folder) of config files whose sources, "
                       "metrics and detectors are added to this one's.",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    # sources and metrics may all come from the included files
    if required := schema.pop("required", None):
        schema["if"] = {"not": {"required": ["include"]}}
        schema["then"] = {"required": required}
    for key, classes in (("sources", source_classes), ("detectors", detector_classes)):
        if not classes:
            schema["properties"][key]["additionalProperties"] = {
                "not": {},
                "description": f"no {key[:-1]} types are registered",
            }
    return schema
