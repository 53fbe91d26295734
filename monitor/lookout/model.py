"""The importer's vocabulary: its input error, the report's notes, the result, and the
checks that turn a malformed AWS CLI document into a clear :class:`LookoutInputError`.

Kept apart from the mapping code so every mapping module (sources, alerts, the converter)
shares one definition of "a note" and "a bad input" without importing each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class LookoutInputError(ValueError):
    """The input is not what the AWS CLI prints (not JSON, wrong shape, a field missing)."""


@dataclass(frozen=True)
class Note:
    """One line of the report: a Lookout setting and what became of it."""

    kind: str  # "manual" (a step to do), "unsupported" (no equivalent), "mapped" (a decision)
    setting: str  # where in the Lookout input, e.g. MetricSource.S3SourceConfig.Charset
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.setting}: {self.message}"


@dataclass
class Conversion:
    """The result: a config document (None when nothing could be converted), the env vars it
    references and the report."""

    config: dict[str, Any] | None
    env: dict[str, str] = field(default_factory=dict)  # variable -> what it must hold
    notes: list[Note] = field(default_factory=list)
    #: Lookout metric name -> the cxmon metrics it became (one per metric set holding it)
    metric_names: dict[str, list[str]] = field(default_factory=dict)
    #: Lookout dimension -> cxmon dimension (sanitized names differ)
    dimension_names: dict[str, str] = field(default_factory=dict)


def load_json(text: str, what: str) -> Any:
    """Parse AWS CLI JSON output; a clear :class:`LookoutInputError` otherwise."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LookoutInputError(f"{what}: not JSON ({exc.msg} at line {exc.lineno}, "
                                f"column {exc.colno})") from None


def _need(obj: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    value = obj.get(key)
    if value is None or (isinstance(value, str | list | dict) and not value):
        raise LookoutInputError(f"{where}{key}: required field missing or empty")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise LookoutInputError(f"{where}{key}: expected {_article(names)}, "
                                f"got {type(value).__name__}")
    return value


def _article(name: str) -> str:
    name = {"str": "string", "dict": "object", "list": "list", "int": "number"}.get(name, name)
    return ("an " if name[0] in "aeiou" else "a ") + name


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LookoutInputError(f"{where}: expected an object, got {type(value).__name__}")
    return value



class _State:
    """What the mapping mixins share: the metric set, the report and the variables so far."""

    ms: dict[str, Any]
    notes: list[Note]
    env: dict[str, str]
    dim_names: dict[str, str]  # Lookout dimension -> cxmon dimension
    names: dict[str, list[str]]  # Lookout metric name -> cxmon metric names (any set)
    set_where: str = ""  # "<metric set>: " while converting one of several sets

    def note(self, kind: str, setting: str, message: str) -> None:
        self.notes.append(Note(kind, self.set_where + setting, message))

    def unknown(self, obj: dict[str, Any], known: set[str], where: str) -> None:
        for key in obj:
            if key not in known and key not in METADATA:
                self.note("unsupported", f"{where}{key}",
                          "unknown Lookout field, not converted; check it by hand")


# Fields that describe the resource, not its behaviour: nothing to convert, not reported.
METADATA = {"MetricSetArn", "AnomalyDetectorArn", "CreationTime", "LastModificationTime",
            "ResponseMetadata", "Status", "FailureReason", "AlertArn", "AlertStatus",
            "AnomalyDetectorName", "AnomalyDetectorDescription"}
