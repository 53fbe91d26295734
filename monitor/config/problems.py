"""pydantic errors turned into config problems: a path and a message a user can act on.

pydantic's locations include union tags and its messages prefixes; this module words them as
paths in the file (``metrics[0].detectors[1]``) with "did you mean" hints."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Union

from pydantic import BaseModel, ValidationError

from detectors.base import DetectorConfig
from detectors.registry import config_class as detector_config_class
from monitor.config.fields import LABEL_NAME, METRIC_NAME
from monitor.config.validator_errors import Loc, _did_you_mean
from sources.base import SourceConfig
from sources.registry import config_class as source_config_class

_SIMPLE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")


def format_path(loc: Iterable[str | int]) -> str:
    """``("metrics", 0, "detectors", 1)`` -> ``metrics[0].detectors[1]``."""
    out = ""
    for el in loc:
        if isinstance(el, int):
            out += f"[{el}]"
        elif _SIMPLE_KEY.match(el):
            out += f".{el}" if out else el
        else:
            out += f"[{json.dumps(el)}]"
    return out


def _child(node: Any, el: str | int) -> Any:
    """Step into raw data by one path element (None when it is not there)."""
    if isinstance(node, Mapping):
        return node.get(el)
    if isinstance(node, list) and isinstance(el, int) and 0 <= el < len(node):
        return node[el]
    return None


#: Discriminated unions whose ``type:`` may be omitted: key -> the tag it then takes.
_DEFAULT_TAGS: dict[str | int, str] = {"executor": "local"}


def _strip_tags(loc: Loc, data: Any) -> Loc:
    """Drop union tag elements, which are not keys in the document: a discriminated union's
    ``type``, and the member names pydantic adds below a value that is no mapping
    (``history.int``, ``daily["literal['auto']"]``)."""
    out: list[str | int] = []
    node = data
    for el in loc:
        if isinstance(node, Mapping) and el not in node and el == node.get(
                "type", _DEFAULT_TAGS.get(out[-1] if out else "")):
            continue
        if (isinstance(el, str) and out and not isinstance(node, Mapping)
                and el not in _known_keys(tuple(out), data)):
            continue
        out.append(el)
        node = _child(node, el)
    return tuple(out)


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types an annotation may hold (Annotated/Optional/Union removed)."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in typing.get_args(tp) for t in _unwrap(arg) if t is not type(None)]
    return [tp]


def _resolve_plugin(tp: Any, node: Any) -> Any:
    """A registry base class (SourceConfig) -> the registered class named by ``type:``."""
    lookups = {SourceConfig: source_config_class, DetectorConfig: detector_config_class}
    if tp in lookups and isinstance(node, Mapping) and isinstance(node.get("type"), str):
        try:
            return lookups[tp](node["type"])
        except KeyError:
            return tp
    return tp


def _known_keys(loc: Loc, data: Any) -> list[str]:
    """The keys the model at ``loc`` accepts, for "did you mean" hints (best effort)."""
    # Imported here: the root model's own checks word their problems with this module.
    from monitor.config.root import MonitorConfig

    tp: Any = MonitorConfig
    node = data
    for el in loc:
        candidates = _unwrap(tp)
        if len(candidates) != 1:
            return []
        tp = _resolve_plugin(candidates[0], node)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(el, str):
            field = tp.model_fields.get(el)
            if field is None:
                return []
            tp = field.annotation
        elif origin is list and isinstance(el, int):
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        else:
            return []
        node = _child(node, el)
    candidates = _unwrap(tp)
    if len(candidates) == 1:
        tp = _resolve_plugin(candidates[0], node)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return [f.alias or n for n, f in tp.model_fields.items()]  # route's `continue`
    return []


def _belongs_elsewhere(loc: Loc) -> str:
    """A hint for a key written one level off: a detector's option on a metric
    (``season: day``) or a metric's post-rule on a detector (``direction: down``). A bare
    "unknown key 'season'" read as if the option did not exist at all."""
    from detectors.registry import detector_types
    from monitor.config.metric import MetricConfig

    key = loc[-1] if loc else None
    if not isinstance(key, str) or len(loc) != 3:
        return ""
    if loc[0] == "metrics" and isinstance(loc[1], int):
        owners = sorted(name for name, cls in detector_types().items()
                        if key != "type" and key in cls.Config.model_fields)
        if owners:
            return (f" ({key!r} is an option of a detector ({', '.join(owners)}): define one, "
                    f"detectors: {{NAME: {{type: {owners[0]}, {key}: ...}}}}, and list NAME "
                    "in this metric's detectors)")
    if loc[0] == "detectors" and key in MetricConfig.model_fields:
        return f" ({key!r} is a metric setting: set it on the metrics that use this detector)"
    return ""


#: The name patterns in words: a regex says what is allowed only to those who read regexes.
_PATTERNS = {
    METRIC_NAME: "must be an identifier: letters, digits, _ and :, not starting with a digit "
                 "(e.g. checkout_conversion); the name people read goes in title:",
    LABEL_NAME: "must be an identifier: letters, digits and _, not starting with a digit "
                "(e.g. sales_channel); a column named otherwise is renamed in the export or "
                "the query (select \"sales-channel\" as sales_channel)",
}


def _message(err: Mapping[str, Any], loc: Loc, data: Any) -> str:
    """A user-facing message from a pydantic error. Never uses the error's ``input``."""
    kind, msg = err["type"], str(err["msg"])
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        known = _known_keys(loc[:-1], data)
        hint = _did_you_mean(key, known) or _belongs_elsewhere(loc)
        if not hint and 0 < len(known) <= 6:  # a short list says what goes here
            hint = f" (keys here: {', '.join(known)})"
        return f"unknown key {key!r}{hint}"
    if kind == "missing" and msg == "Field required" and loc:
        return f"missing required key {loc[-1]!r}"
    raw = _raw_at(data, loc)
    if kind == "model_type":  # "a valid dictionary or instance of WindowRule": our class name
        keys = _known_keys(loc, data)
        shape = ("{" + ", ".join(f"{k}: ..." for k in keys[:4]) + (", ...}" if keys[4:] else "}")
                 if keys else "of keys ({key: value})")
        return f"expected a mapping {shape}, not {_kind_of(raw)}"
    if (kind == "string_type" and isinstance(raw, Mapping) and len(loc) == 4
            and loc[0] == "metrics" and loc[2] == "detectors"):  # defined inline: a name here
        return ("expected a detector's name, not its settings: define it under the top-level "
                "detectors: {NAME: {type: ..., ...}} and list NAME here")
    if kind == "list_type" and loc and isinstance(loc[-1], str) and not isinstance(
            raw, (Mapping, type(None))):  # `detectors: default`: pydantic said "a valid list"
        return (f"expected a list, not {_kind_of(raw)}: write even one item in brackets, "
                f"{loc[-1]}: [...]")
    if kind in ("float_parsing", "int_parsing") and str(raw).strip().endswith("%"):
        return "expected a number: a share is a fraction here (10% is 0.1)"
    if kind == "string_pattern_mismatch" and (said := _PATTERNS.get(
            msg.removeprefix("String should match pattern ").strip("'"))):
        return said
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def _raw_at(data: Any, loc: Loc) -> Any:
    """The raw value at ``loc`` (None when the path leaves the data)."""
    for el in loc:
        data = _child(data, el)
    return data


def _kind_of(value: Any) -> str:
    """What a value is, by type only (it may be a secret)."""
    return {bool: "true/false", int: "a number", float: "a number", str: "text",
            list: "a list"}.get(type(value), "a single value")


def _problems_from(exc: ValidationError, data: Any) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    members: dict[Loc, int] = {}  # a value that fits no member of a union: one problem
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        raw = tuple(err["loc"])
        loc = _strip_tags(raw, data)
        if "[key]" in loc:
            loc = tuple(el for el in loc if el != "[key]")
            out.append((loc, "invalid key: " + _message(err, loc, data)))
        elif loc and raw[-1] != loc[-1] and loc in members:  # another member's complaint
            msg, first = _message(err, loc, data), out[members[loc]][1]
            if first.startswith("Input should be ") and msg.startswith("Input should be "):
                msg = msg.removeprefix("Input should be ")
            out[members[loc]] = (loc, f"{first} or {msg}")
        else:
            if loc and raw[-1] != loc[-1]:
                members[loc] = len(out)
            out.append((loc, _message(err, loc, data)))
    return out


def validation_problems(exc: ValidationError, data: Any) -> list[tuple[str, str]]:
    """``(path, message)`` per problem of a pydantic error on ``data``, worded as a config
    file's problems are (one problem for a value that fits no member of a union, no
    "Value error, " prefixes), for the CLI options that take settings outside a file."""
    return [(format_path(loc), msg) for loc, msg in _problems_from(exc, data)]
