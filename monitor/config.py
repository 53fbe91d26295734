"""The one YAML config file, parsed into strict pydantic models.

Everything wrong with a file is reported at once, each problem with its path
(``metrics[0].detectors[1]``), so a user fixes a config in one pass instead of one error per
run (Alertmanager's ``config.Load``). The pipeline is:

1. YAML -> node tree: syntax errors, duplicate keys and the line of every path (for ordering);
2. ``${VAR}`` interpolation in string values, remembering which paths hold environment values;
3. pydantic validation (sources and detectors against their registered config classes);
4. cross-references (metric -> source / detectors, route -> receiver, duplicate names).

Values that came from the environment are treated as secrets: problems never quote them.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import os
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    SecretStr,
    SerializeAsAny,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError

from alerts.am_config import InhibitRuleConfig, RouteConfig, check_references  # route tree
from alerts.notifiers.config import (
    FeedbackServerConfig,
    PagerDutyReceiverConfig,
    SlackReceiverConfig,
    WebhookReceiverConfig,
)
from alerts.timeintervals import NamedTimeInterval  # alerting.time_intervals
from dashboards.config import ExporterConfig
from detectors.base import DetectorConfig
from detectors.calendar import CalendarConfig, Calendars
from detectors.postrules import MissingPolicy, WindowRule
from detectors.registry import config_class as detector_config_class
from detectors.registry import detector_types
from monitor.dburl import STORE_BACKENDS, STORE_EXAMPLES, url_problem
from monitor.durations import Duration, format_duration, parse_duration
from monitor.errors import ConfigError, Problem
from monitor.model import Direction, ValueKind
from monitor.redact import redact_url as _redact_url
from sources.base import SourceConfig
from sources.registry import config_class as source_config_class
from sources.registry import params_class as source_params_class
from sources.registry import source_types

__all__ = [
    "DEFAULT_DETECTOR_TYPE",
    "AlertingConfig",
    "ConsoleReceiverConfig",
    "DaskExecutorConfig",
    "DisplayConfig",
    "ExecutorConfig",
    "GrafanaConfig",
    "InlineExecutorConfig",
    "LocalExecutorConfig",
    "MetricConfig",
    "MonitorConfig",
    "ReceiverConfig",
    "RouteConfig",
    "SchedulerConfig",
    "StoreConfig",
    "ValueSpec",
    "config_json_schema",
    "display_warnings",
    "format_path",
    "load_config",
    "parse_config",
    "redact_url",
]

DEFAULT_DETECTOR_TYPE = "robust_seasonal"
"""Type of the implicit ``default`` detector, added when the user defines none of that name."""

Loc = tuple[str | int, ...]

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


# --------------------------------------------------------------------------------------------
# Errors raised from inside validators keep their structure (pydantic relocates nested
# ValidationErrors), so a check on a list can point at the offending element.


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
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
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


# --------------------------------------------------------------------------------------------
# Models




def redact_url(url: str) -> str:
    """The URL with secrets masked (see :func:`monitor.redact.redact_url`)."""
    return _redact_url(url)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be greater than 0s")
    return value


def _non_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


class StoreConfig(BaseModel):
    """Where series and state are kept; ``store: <url>`` is shorthand for ``{url: ...}``."""

    model_config = _STRICT

    url: str = "sqlite:///cxmon.db"
    retention: Duration = timedelta(days=90)  # how long raw points are kept

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    _retention_positive = field_validator("retention")(_positive)

    @field_validator("url")
    @classmethod
    def _url_usable(cls, value: str) -> str:
        # what Store() refuses, refused here too, so `cxmon validate` agrees with `cxmon run`
        problem = url_problem(value, STORE_BACKENDS)
        if problem:
            raise ValueError(f"{problem} ({STORE_EXAMPLES})" if "unsupported" in problem
                             else problem)
        return value

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # The URL may carry a database password: never show it in reprs or logs.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "url" else value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler.resolve_ref_schema(handler(core_schema))
        url = {"type": "string", "description": "database URL (shorthand for {url: ...})"}
        return {"anyOf": [url, dict(schema)]}


_VALUE_FORMS = (
    "value must be one of: a column name (value: orders), {sum: column}, "
    "{ratio: [numerator_column, denominator_column]}, {mean: column} (the mean over the rows "
    "of a bucket) or {mean: [sum_column, count_column]}"
)


class ValueSpec(BaseModel):
    """How a metric's value is computed from its rows, normalized from four YAML forms."""

    model_config = _STRICT

    kind: ValueKind
    numerator: Column
    denominator: Column | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"kind": ValueKind.SUM, "numerator": data}
        if not isinstance(data, Mapping):
            raise ValueError(_VALUE_FORMS)
        if "kind" in data:
            return data  # already normalized
        if len(data) != 1:
            raise ValueError(_VALUE_FORMS)
        ((key, arg),) = data.items()
        if key == "sum" and isinstance(arg, str):
            return {"kind": ValueKind.SUM, "numerator": arg}
        if key == "mean" and isinstance(arg, str):  # one row = one observation (a rating)
            return {"kind": ValueKind.MEAN, "numerator": arg}
        if key in ("ratio", "mean"):
            parts = {
                "ratio": "numerator_column, denominator_column",
                "mean": "sum_column, count_column",
            }
            if not (isinstance(arg, list) and len(arg) == 2):
                one = " or one column (the mean over rows)" if key == "mean" else ""
                raise ValueError(f"{key} needs a list of two column names: [{parts[key]}]{one}")
            return {"kind": ValueKind(key), "numerator": arg[0], "denominator": arg[1]}
        raise ValueError(_VALUE_FORMS)

    @model_validator(mode="after")
    def _parts_match_kind(self) -> ValueSpec:
        if self.kind is ValueKind.SUM and self.denominator is not None:
            raise ValueError("a sum value needs exactly one column")
        if self.kind is ValueKind.RATIO and self.denominator is None:
            raise ValueError("a ratio value needs two columns")
        return self

    def columns(self) -> list[str]:
        """The source columns this value reads."""
        return [self.numerator] if self.denominator is None else [self.numerator, self.denominator]

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        col = {"type": "string", "minLength": 1}
        pair = {"type": "array", "items": col, "minItems": 2, "maxItems": 2}

        def one(key: str, schema: dict[str, Any]) -> dict[str, Any]:
            return {
                "type": "object",
                "properties": {key: schema},
                "required": [key],
                "additionalProperties": False,
            }

        return {
            "description": _VALUE_FORMS,
            "oneOf": [col, one("sum", col), one("ratio", pair),
                      one("mean", {"oneOf": [col, pair]})],
        }


def _unique(items: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    dups = []
    for i, item in enumerate(items):
        if item in seen:
            dups.append(((i,), "duplicate", f"duplicate {what} {item!r}"))
        seen.add(item)
    _raise(what, dups)
    return items


class MetricConfig(BaseModel):
    """One KPI: which source and query produce it, how to bucket it, when to alert."""

    model_config = _STRICT

    name: str = Field(pattern=METRIC_NAME)
    source: str
    query: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    interval: Duration = timedelta(minutes=5)
    timestamp: str = "timestamp"  # the timestamp column
    dimensions: list[LabelName] = Field(default_factory=list)  # rolled up
    split_by: list[LabelName] = Field(default_factory=list)  # kept on every series, not rolled up
    value: ValueSpec
    labels: dict[LabelName, str] = Field(default_factory=dict)
    direction: Direction = Direction.BOTH
    detectors: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    delay: Duration = timedelta(0)  # how long after a bucket ends its data is complete
    # sources (issue 6): re-poll this much of the recent past each tick and upsert corrections
    # (re-polled buckets are not detected again); alert "no data" after this long without rows
    # (default 3 intervals; 0s turns it off)
    late_window: Duration = timedelta(0)
    no_data_after: Duration | None = None
    # On a metric's first tick (no cursor yet), learn from this much history: its anomalies
    # are stored but only the newest bucket can alert (no alert storm about old data).
    history: Duration = timedelta(0)
    min_severity: float = Field(default=25.0, ge=0, le=100)  # 25 = a 1-in-10,000 point
    min_change: float = Field(default=0.0, ge=0)  # relative change needed to alert
    min_abs_change: float = Field(default=0.0, ge=0)  # absolute change needed to alert
    min_volume: float = Field(default=0.0, ge=0)  # minimum denominator / count to alert
    # Stateful post-rules per series (detectors/postrules.py RuleState; README "Detectors").
    consecutive: int = Field(default=1, ge=1, le=64)  # unusual points in a row to alert
    window: WindowRule | None = None  # {k, n}: k of the last n points unusual to alert
    warmup: Duration = timedelta(0)  # no alerts this long after a series first appears
    suppress: Duration = timedelta(0)  # no new alert on a series this long after one
    missing: MissingPolicy = MissingPolicy.SKIP  # skip | zero | carry (a bucket without data)
    #: what people read for this metric in alerts and dashboards (``name`` is for machines)
    title: DisplayName | None = None
    description: str | None = None  # a sentence: the Grafana panel's description
    runbook: str | None = None
    #: false: the top-level ``calendar`` (holidays, events) does not apply to this metric
    calendar: bool = True

    _interval_positive = field_validator("interval")(_positive)
    _delay_non_negative = field_validator("delay", "late_window", "history")(_non_negative)

    @field_validator("no_data_after")
    @classmethod
    def _no_data_after_non_negative(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else _non_negative(value)

    @field_validator("dimensions")
    @classmethod
    def _unique_dimensions(cls, value: list[str]) -> list[str]:
        return _unique(value, "dimension")

    @field_validator("split_by")
    @classmethod
    def _split_by_not_dimensions(cls, value: list[str], info: ValidationInfo) -> list[str]:
        dims = set(info.data.get("dimensions") or ())
        both = [
            ((i,), "collision", f"{k!r} is also a dimension")
            for i, k in enumerate(value)
            if k in dims
        ]
        _raise("split_by", both)
        return _unique(value, "split_by label")

    @field_validator("detectors")
    @classmethod
    def _unique_detectors(cls, value: list[str]) -> list[str]:
        return _unique(value, "detector")

    @field_validator("labels")
    @classmethod
    def _labels_not_dimensions(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        taken = {
            **dict.fromkeys(info.data.get("split_by") or (), "split_by label"),
            **dict.fromkeys(info.data.get("dimensions") or (), "dimension"),
        }
        _raise(
            "labels",
            (((k,), "collision", f"label {k!r} is also a {taken[k]}") for k in value if k in taken),
        )
        return value


def _yaml_key_problem(key: Any) -> str | None:
    """Why a YAML key cannot be a label value (None: it can, after ``str``)."""
    if isinstance(key, bool) or key is None:
        what = "null (~, null)" if key is None else "a boolean (yes, no, on, off, true, false)"
        return (f"a label value is read by YAML as {what}, not text: quote it ('no': Norway)")
    if isinstance(key, float):
        return f"{key} is read by YAML as a number: quote the label value as in the data"
    return None


class DisplayConfig(BaseModel):
    """Names people read for labels and label values in alerts and dashboards (identifiers
    stay in series keys, links and webhook ``labels``)."""

    model_config = _STRICT

    labels: dict[LabelName, DisplayName] = Field(
        default_factory=dict, description="label -> its display name (channel: Channel)")
    values: dict[LabelName, dict[str, DisplayName]] = Field(
        default_factory=dict,
        description="label -> {value: display name} (channel: {app: Mobile app})")

    @field_validator("values", mode="wrap")
    @classmethod
    def _values_text(cls, value: Any, handler: Callable[[Any], Any]) -> Any:
        """Label values are text in the data: ``1`` becomes "1"; a YAML boolean (``no``),
        null or float is an error with a hint to quote it, reported with the other
        problems of the section."""
        if not isinstance(value, Mapping):
            return handler(value)
        mine: list[InitErrorDetails] = []
        out: dict[Any, Any] = {}
        for label, names in value.items():
            out[label] = names
            if isinstance(names, Mapping):
                out[label] = {}
                for key, name in names.items():
                    if (why := _yaml_key_problem(key)) is not None:
                        mine.append(InitErrorDetails(type=PydanticCustomError("value_key", why),
                                                     loc=(label,), input=None))
                    else:
                        out[label][str(key)] = name
        try:
            result = handler(out)
        except ValidationError as exc:
            mine += _relocate(exc)
        if mine:
            raise ValidationError.from_exception_data("values", mine)
        return result

    @model_validator(mode="after")
    def _distinct(self) -> DisplayConfig:
        """Two labels (or two values of a label) with one display name would make alerts that
        cannot tell them apart."""
        errors: list[tuple[Loc, str, str]] = []
        errors += _same_names(self.labels, ("labels",), "label")
        for label, names in self.values.items():
            errors += _same_names(names, ("values", label), f"{label} value")
        _raise("display", errors)
        return self


def _same_names(names: Mapping[str, str], loc: Loc, what: str) -> list[tuple[Loc, str, str]]:
    """A problem per key whose display name an earlier key already has."""
    first: dict[str, str] = {}
    out: list[tuple[Loc, str, str]] = []
    for key, name in names.items():
        if name.casefold() in first:
            out.append(((*loc, key), "duplicate",
                        f"display name {name!r} is already that of {what} "
                        f"{first[name.casefold()]!r}: alerts could not tell them apart"))
        else:
            first[name.casefold()] = key
    return out


def display_warnings(config: MonitorConfig) -> list[tuple[str, str]]:
    """``(config path, message)`` for display names nothing uses: a label in ``display`` that
    no metric has (as a dimension, ``split_by`` or ``labels`` key: a typo, the text stays an
    identifier), and two metrics with one ``title``. Not errors: the alerts still work."""
    known = sorted({k for m in config.metrics for k in (*m.dimensions, *m.split_by, *m.labels)})
    out: list[tuple[str, str]] = []
    for part in ("labels", "values"):
        for label in getattr(config.display, part):
            if label not in known:
                out.append((format_path(("display", part, label)),
                            f"no metric has a label {label!r}{_did_you_mean(label, known)}; "
                            f"metric labels: {', '.join(known) or 'none'}"))
    titles: dict[str, int] = {}
    for i, m in enumerate(config.metrics):
        if m.title is None:
            continue
        if m.title.casefold() in titles:
            j = titles[m.title.casefold()]
            out.append((format_path(("metrics", i, "title")),
                        f"{m.title!r} is also the title of {config.metrics[j].name} "
                        f"(metrics[{j}]): alerts could not tell them apart"))
        else:
            titles[m.title.casefold()] = i
    return out


class ConsoleReceiverConfig(BaseModel):
    """Print notifications to the terminal (``rich``) or as JSON lines (``json``)."""

    model_config = _STRICT

    format: Literal["rich", "json"] = "rich"


class ReceiverConfig(BaseModel):
    """A named destination; with no notifier configured it drops what reaches it."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    console: ConsoleReceiverConfig | None = None
    # delivery receivers (models in alerts/notifiers/config.py)
    slack: SlackReceiverConfig | None = None
    webhook: WebhookReceiverConfig | None = None
    pagerduty: PagerDutyReceiverConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data: Any) -> Any:
        # ``console:`` with nothing under it reads as "console with defaults", not "off".
        if isinstance(data, Mapping) and "console" in data and data["console"] is None:
            return {**data, "console": {}}
        return data


def _default_receivers() -> list[ReceiverConfig]:
    return [ReceiverConfig(name="console", console=ConsoleReceiverConfig())]


def _check_alerting(data: Any) -> list[tuple[Loc, str, str]]:
    """Receiver names unique; route receiver defined. Works on raw YAML or models."""
    out: list[tuple[Loc, str, str]] = []
    receivers = _get(data, "receivers") if _has(data, "receivers") else _default_receivers()
    if not isinstance(receivers, list):
        return out
    names: dict[str, int] = {}
    for i, rec in enumerate(receivers):
        name = _get(rec, "name")
        if not isinstance(name, str):
            continue
        if name in names:
            msg = f"duplicate receiver name {name!r} (first at alerting.receivers[{names[name]}])"
            out.append((("receivers", i, "name"), "duplicate", msg))
        else:
            names[name] = i
    # route tree: receivers and time intervals defined, root-route rules (alerts/am_config.py)
    return out + check_references(data, names, _did_you_mean)


class AlertingConfig(BaseModel):
    """Receivers and the route tree that picks one for each notification."""

    model_config = _STRICT

    receivers: list[ReceiverConfig] = Field(default_factory=_default_receivers)
    route: RouteConfig = Field(default_factory=RouteConfig)
    resolve_after: Duration = Field(
        default=timedelta(hours=3),
        description="An incident resolves when its group had no anomaly for this long "
        "(at least three intervals of the slowest metric are used).",
    )
    resolve_after_ticks: int = Field(
        default=0, ge=0,
        description="...and only after this many ticks (of any metric) without an anomaly in "
        "its group.",
    )
    feedback: FeedbackServerConfig | None = Field(
        default=None, description="HTTP endpoint for Slack's feedback buttons."
    )
    # Alertmanager syntax, verbatim (alerts/am_config.py, alerts/timeintervals.py)
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    time_intervals: list[NamedTimeInterval] = Field(default_factory=list)
    mute_time_intervals: list[NamedTimeInterval] = Field(default_factory=list)  # deprecated form

    @model_validator(mode="wrap")
    @classmethod
    def _validate_all(cls, data: Any, handler: Callable[[Any], AlertingConfig]) -> AlertingConfig:
        result = _validate_with_checks(cls, data, handler, _check_alerting)
        if result.route.receiver is None and result.receivers:
            result.route.receiver = result.receivers[0].name
        if result.route.group_by is None:  # cxmon's default: one incident per journey
            result.route.group_by = ["journey"]
        return result


class GrafanaConfig(BaseModel):
    """The Grafana server dashboards and annotations are pushed to."""

    model_config = _STRICT

    url: str
    token: SecretStr | None = None


class SchedulerConfig(BaseModel):
    """Tick timing: jitter spreads polls; misfire grace lets a late tick still run."""

    model_config = _STRICT

    jitter: Duration = timedelta(seconds=5)
    misfire_grace: Duration = timedelta(minutes=1)

    _durations_non_negative = field_validator("jitter", "misfire_grace")(_non_negative)


class InlineExecutorConfig(BaseModel):
    """Slow model fits run on the tick itself (reproducible; what backtests do)."""

    model_config = _STRICT

    type: Literal["inline"]


class LocalExecutorConfig(BaseModel):
    """Slow model fits (Prophet refits) run in a pool of this process, off the tick path."""

    model_config = _STRICT

    type: Literal["local"] = "local"
    workers: int = Field(1, ge=1, le=256, description="Fits running at once.")
    processes: bool = Field(False, description="Worker processes instead of threads "
                            "(isolates a fit that crashes or leaks; costs start-up time).")


class DaskExecutorConfig(BaseModel):
    """Slow model fits run on a Dask cluster (``dask.distributed``)."""

    model_config = _STRICT

    type: Literal["dask"]
    address: str = Field(min_length=1, description="Scheduler address, e.g. "
                         "tcp://dask-scheduler:8786 (workers need cxmon installed).")
    timeout: Duration = Field(timedelta(seconds=10), description="Connecting to the "
                              "scheduler gives up after this long (a host that does not "
                              "resolve or a refused port fails at once).")

    _timeout_positive = field_validator("timeout")(_positive)

    @field_validator("address")
    @classmethod
    def _address_form(cls, v: str) -> str:
        """``[tcp://]host:port``, checked here: Dask's own errors for a malformed address
        are tracebacks from deep inside its client."""
        scheme, sep, rest = v.partition("://")
        if not sep:
            scheme, rest = "tcp", v
        if scheme in ("tls", "wss"):
            raise ValueError(f"{scheme}:// needs TLS settings that cxmon does not pass to Dask "
                             "yet; use tcp:// (e.g. inside a private network)")
        if scheme not in ("tcp", "ws", "inproc", "ucx"):
            raise ValueError(f"unknown scheme {scheme!r}: a Dask scheduler address is "
                             "tcp://host:port (also ws://, ucx://)")
        host, colon, port = rest.rpartition(":")
        if scheme != "inproc" and (not colon or not host.strip("[]") or not port.isdigit()
                                   or not 0 < int(port) < 65536):
            raise ValueError("expected tcp://host:port with a port from 1 to 65535, e.g. "
                             "tcp://dask-scheduler:8786")
        return v


def _executor_type(value: Any) -> str | None:
    """The executor's ``type:``; ``local`` when omitted (``{workers: 4}``)."""
    if isinstance(value, Mapping):
        return value.get("type", "local") if isinstance(value.get("type", "local"), str) else None
    return getattr(value, "type", None)


ExecutorConfig = Annotated[
    Annotated[InlineExecutorConfig, Tag("inline")]
    | Annotated[LocalExecutorConfig, Tag("local")]
    | Annotated[DaskExecutorConfig, Tag("dask")],
    Discriminator(_executor_type, custom_error_type="executor_type",
                  custom_error_message="unknown executor type; valid types: inline, local, dask"),
]


def _validate_plugins(
    value: Any, kind: str, lookup: Callable[[str], type[BaseModel]], valid: Iterable[str]
) -> Any:
    """Validate each ``name: {type: ..., ...}`` entry against its registered config class."""
    if not isinstance(value, Mapping):
        return value  # pydantic reports "valid dictionary"
    valid_list = ", ".join(sorted(valid)) or "none registered"
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


def _check_metrics(data: Any) -> list[tuple[Loc, str, str]]:
    """Metric names unique; metric sources and detectors defined. Raw YAML or models."""
    out: list[tuple[Loc, str, str]] = []
    sources = _get(data, "sources")
    detectors = _get(data, "detectors") if _has(data, "detectors") else {}
    metrics = _get(data, "metrics")
    if not isinstance(metrics, list):
        return out
    # Only string keys name anything (a non-string key is reported by validation).
    src_names = [k for k in sources if isinstance(k, str)] if isinstance(sources, Mapping) else None
    det_names = (
        [k for k in detectors if isinstance(k, str)] if isinstance(detectors, Mapping) else None
    )
    if det_names is not None and "default" not in det_names and _default_detector() is not None:
        det_names.append("default")
    seen: dict[str, int] = {}
    for i, metric in enumerate(metrics):
        name = _get(metric, "name")
        if isinstance(name, str):
            if name in seen:
                msg = f"duplicate metric name {name!r} (first at metrics[{seen[name]}])"
                out.append((("metrics", i, "name"), "duplicate", msg))
            else:
                seen[name] = i
        src = _get(metric, "source")
        if isinstance(src, str) and src_names is not None and src not in src_names:
            defined = ", ".join(src_names) or "none"
            msg = f"source {src!r} is not defined{_did_you_mean(src, src_names)}; "
            out.append((("metrics", i, "source"), "reference", msg + f"defined sources: {defined}"))
        if isinstance(src, str) and isinstance(sources, Mapping) and src in sources:
            out += _check_grain(i, metric, src, _get(sources[src], "type"))
            out += _check_params(i, metric, _get(sources[src], "type"))
        if det_names is None or not isinstance(metric, Mapping | BaseModel):
            continue
        defined = ", ".join(det_names) or "none"
        if not _has(metric, "detectors") and "default" not in det_names:
            msg = (
                "no detectors listed and no detector named 'default' is defined; "
                f"list detectors or define detectors.default (defined detectors: {defined})"
            )
            out.append((("metrics", i, "detectors"), "reference", msg))
            continue
        listed = _get(metric, "detectors")
        for j, det in enumerate(listed if isinstance(listed, list) else ()):
            if isinstance(det, str) and det not in det_names:
                msg = f"detector {det!r} is not defined{_did_you_mean(det, det_names)}; "
                loc: Loc = ("metrics", i, "detectors", j)
                out.append((loc, "reference", msg + f"defined detectors: {defined}"))
        out += _check_streaks(i, metric, listed if isinstance(listed, list) else ["default"],
                              detectors)
    return out


def _check_exported(data: Any) -> list[tuple[Loc, str, str]]:
    """``exporter.metrics`` names defined metrics: a typo would export nothing for that metric
    (empty dashboards) without a word."""
    exporter = _get(data, "exporter") if _has(data, "exporter") else None
    listed = _get(exporter, "metrics") if _has(exporter, "metrics") else None
    metrics = _get(data, "metrics")
    if not isinstance(listed, list) or not isinstance(metrics, list):
        return []
    names = [n for m in metrics if isinstance(n := _get(m, "name"), str)]
    out: list[tuple[Loc, str, str]] = []
    for i, name in enumerate(listed):
        if isinstance(name, str) and name not in names:
            msg = (f"metric {name!r} is not defined{_did_you_mean(name, names)}; "
                   f"defined metrics: {', '.join(names) or 'none'}")
            out.append((("exporter", "metrics", i), "reference", msg))
    return out


def _check_calendar_label(data: Any) -> list[tuple[Loc, str, str]]:
    """``calendar.by.label`` is a label the series of some metric that follows the calendar
    carry (a dimension, a split_by label or a fixed label): a typo would give no series its
    own calendar without a word."""
    cal = _get(data, "calendar") if _has(data, "calendar") else None
    by = _get(cal, "by") if _has(cal, "by") else None
    label = _get(by, "label") if _has(by, "label") else None
    metrics = _get(data, "metrics")
    if not isinstance(label, str) or not isinstance(metrics, list):
        return []
    known: list[str] = []
    for m in metrics:
        if _has(m, "calendar") and _get(m, "calendar") is False:
            continue  # the calendar does not apply to it
        for key in ("dimensions", "split_by", "labels"):
            found = _get(m, key) if _has(m, key) else None
            known += [str(k) for k in found or () if str(k) not in known] \
                if isinstance(found, list | dict) else []
    if label in known:
        return []
    msg = (f"no metric that follows the calendar has a label {label!r}"
           f"{_did_you_mean(label, known)}; their labels: {', '.join(sorted(known)) or 'none'}")
    return [(("calendar", "by", "label"), "reference", msg)]


def _duration_of(raw: Any) -> timedelta | None:
    """A raw duration value (``5m`` or a timedelta) or None when it is not one (validation
    reports that)."""
    if isinstance(raw, str):
        try:
            return parse_duration(raw)
        except ValueError:
            return None
    return raw if isinstance(raw, timedelta) else None


def _check_jitter(data: Any) -> list[tuple[Loc, str, str]]:
    """``scheduler.jitter`` shorter than every metric's interval: a tick delayed by more than
    its interval runs after the next bucket is due, and the two overlap."""
    scheduler = _get(data, "scheduler")
    jitter = _duration_of(_get(scheduler, "jitter")) if _has(scheduler, "jitter") else None
    metrics = _get(data, "metrics")
    if jitter is None or not isinstance(metrics, list):
        return []
    intervals = [d for m in metrics if _has(m, "interval")
                 and (d := _duration_of(_get(m, "interval"))) is not None and d > timedelta(0)]
    if not intervals or jitter < min(intervals):
        return []
    msg = (f"jitter {format_duration(jitter)} is not shorter than the shortest metric "
           f"interval ({format_duration(min(intervals))}): ticks would run after the next "
           "bucket is due")
    return [(("scheduler", "jitter"), "value", msg)]


def _check_params(i: int, metric: Any, kind: Any) -> list[tuple[Loc, str, str]]:
    """A metric's ``params`` checked against its source type's model (``Source.Params``)
    with the rest of the config: a misspelt key used to surface only at the first poll."""
    model = source_params_class(kind) if isinstance(kind, str) else None
    # no params is {} (what a poll gets): ServiceNow's default Table API mode still needs
    # the metric's dimensions among params.fields
    params = _get(metric, "params") if _has(metric, "params") else {}
    if model is None or not isinstance(params, Mapping):
        return []
    try:
        parsed = model.model_validate(dict(params))
    except ValidationError as exc:
        out: list[tuple[Loc, str, str]] = []
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            loc: Loc = ("metrics", i, "params", *err["loc"])
            if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                key = str(err["loc"][0])
                msg = (f"unknown key {key!r}{_did_you_mean(key, list(model.model_fields))}"
                       if model.model_fields else
                       f"unknown key {key!r}: {kind} sources take no params (remove it)")
            else:
                msg = _message(err, loc, None)
            out.append((loc, "params", msg))
        return out
    out = []
    # templates that use what the params do not define (http_json: an unknown {placeholder}
    # in the URL was fatal at the first poll)
    templates = getattr(parsed, "query_problems", None)
    if callable(templates):
        query = _get(metric, "query") if _has(metric, "query") else None
        out += [(("metrics", i, *where), "params", msg)
                for where, msg in templates(query).items()]
    # params that are fine alone but cannot serve the metric (ServiceNow's Table API returns
    # only params.fields: a dimension not among them failed at the first poll)
    check = getattr(parsed, "metric_problems", None)
    if not callable(check):
        return out
    columns = [c for key in ("split_by", "dimensions")
               if isinstance(cols := _get(metric, key), list) for c in cols if isinstance(c, str)]
    return out + [(("metrics", i, "params", key), "params", msg)
                  for key, msg in check(columns).items()]


def _check_grain(i: int, metric: Any, source: str, kind: Any) -> list[tuple[Loc, str, str]]:
    """A metric finer than its source's data (15-minute buckets of hourly GA4 reports) would
    stamp each hour's counts on its first quarter and leave the rest empty: say so."""
    try:
        finest = source_config_class(kind).finest_interval if isinstance(kind, str) else None
    except KeyError:
        return []
    interval = _get(metric, "interval") if _has(metric, "interval") else None
    if isinstance(interval, str):
        try:
            interval = parse_duration(interval)
        except ValueError:
            return []  # reported by validation
    if not finest or not isinstance(interval, timedelta) or interval % finest == timedelta(0):
        return []
    msg = (f"interval {format_duration(interval)} is finer than, or not a multiple of, the "
           f"{format_duration(finest)} grain of source {source!r} ({kind} data); use a "
           f"multiple of {format_duration(finest)}")
    return [(("metrics", i, "interval"), "value", msg)]


def _refractory(detector: Any) -> int:
    """Points a detector reports as 0 after an alarm (its ``refractory`` setting), else 0."""
    kind = _get(detector, "type")
    try:
        fields = detector_config_class(kind).model_fields if isinstance(kind, str) else {}
    except KeyError:
        return 0
    if "refractory" not in fields:
        return 0
    value = _get(detector, "refractory") if _has(detector, "refractory") else (
        fields["refractory"].default)
    return value if isinstance(value, int) else 0


def _check_streaks(i: int, metric: Any, listed: list[Any], detectors: Any
                   ) -> list[tuple[Loc, str, str]]:
    """A detector that reports one point per incident (a refractory period) can never
    satisfy ``consecutive > 1`` or a ``window`` needing more than one point: say so."""
    out: list[tuple[Loc, str, str]] = []
    needs = max(_get(metric, "consecutive", 1) if isinstance(_get(metric, "consecutive", 1),
                                                             int) else 1,
                _get(_get(metric, "window"), "k", 1) if _has(metric, "window") else 1)
    if not isinstance(needs, int) or needs <= 1 or not isinstance(detectors, Mapping):
        return out
    rule = "consecutive" if _get(metric, "consecutive", 1) == needs else "window"
    for det in listed:
        if isinstance(det, str) and det in detectors and _refractory(detectors[det]) > 0:
            msg = (f"detector {det!r} reports one point per incident (refractory "
                   f"{_refractory(detectors[det])} points), so {rule} needing {needs} unusual "
                   f"points would never alert; use "
                   f"{'consecutive: 1' if rule == 'consecutive' else 'a window with k: 1'} "
                   "with it, or set its refractory to 0")
            out.append((("metrics", i, rule), "incompatible", msg))
    return out


class MonitorConfig(BaseModel):
    """The whole config file."""

    model_config = _STRICT

    store: StoreConfig = Field(default_factory=StoreConfig)
    sources: dict[str, SerializeAsAny[SourceConfig]]
    metrics: list[MetricConfig] = Field(min_length=1)
    detectors: dict[str, SerializeAsAny[DetectorConfig]] = Field(default_factory=dict)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    grafana: GrafanaConfig | None = None
    exporter: ExporterConfig = Field(default_factory=ExporterConfig)  # dashboards/config.py
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    #: Where ``cxmon run`` runs slow model fits (monitor/executor.py).
    executor: ExecutorConfig = Field(default_factory=LocalExecutorConfig)
    #: Names people read for labels and their values (alerts/display.py)
    display: DisplayConfig = Field(default_factory=DisplayConfig)
    #: Holidays and events the detectors treat apart (detectors/calendar.py)
    calendar: CalendarConfig | None = None
    _calendar: Calendars | None = PrivateAttr(None)

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        return _validate_plugins(value, "source", source_config_class, source_types())

    @field_validator("detectors", mode="before")
    @classmethod
    def _detectors(cls, value: Any) -> Any:
        return _validate_plugins(value, "detector", detector_config_class, detector_types())

    @model_validator(mode="wrap")
    @classmethod
    def _validate_all(cls, data: Any, handler: Callable[[Any], MonitorConfig]) -> MonitorConfig:
        result = _validate_with_checks(cls, data, handler,
                                       lambda d: _check_metrics(d) + _check_jitter(d)
                                       + _check_exported(d) + _check_calendar_label(d))
        if "default" not in result.detectors and (default := _default_detector()) is not None:
            result.detectors["default"] = default
        return result

    def metric(self, name: str) -> MetricConfig:
        """The metric called ``name``; ``KeyError`` lists the defined ones."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        names = ", ".join(m.name for m in self.metrics)
        raise KeyError(f"no metric named {name!r}; defined metrics: {names}")

    def calendar_for(self, metric: MetricConfig) -> Calendars | None:
        """The business calendars that apply to ``metric`` (one instance per config, so
        holidays are looked up once)."""
        if self.calendar is None or not metric.calendar:
            return None
        if self._calendar is None:
            self._calendar = Calendars(self.calendar)
        return self._calendar.for_dimensions(metric.dimensions)

    def detector(self, name: str) -> DetectorConfig:
        """The detector config called ``name``; ``KeyError`` lists the defined ones."""
        try:
            return self.detectors[name]
        except KeyError:
            names = ", ".join(self.detectors) or "none"
            raise KeyError(f"no detector named {name!r}; defined detectors: {names}") from None


# --------------------------------------------------------------------------------------------
# YAML: one pass over the node tree finds duplicate keys and the position of every path.


class _Positions:
    """Start/end (line, column) of every path in the document, to sort problems by."""

    def __init__(self) -> None:
        self.spans: dict[Loc, tuple[tuple[int, int], tuple[int, int]]] = {}

    def add(self, loc: Loc, start: yaml.Mark, end: yaml.Mark) -> None:
        # Last one wins, like the value YAML keeps for a duplicate key.
        self.spans[loc] = ((start.line, start.column), (end.line, end.column))

    def of(self, loc: Loc) -> tuple[int, int]:
        """Where a path starts; for a missing key, the end of its closest existing parent."""
        if loc in self.spans:
            return self.spans[loc][0]
        for n in range(len(loc) - 1, -1, -1):
            if loc[:n] in self.spans:
                return self.spans[loc[:n]][1]
        return (1 << 30, 0)


def _walk_nodes(
    node: yaml.Node, loc: Loc, pos: _Positions, problems: list[tuple[Loc, str, tuple[int, int]]]
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = key_node.value
            where = (key_node.start_mark.line, key_node.start_mark.column)
            if key in seen:
                msg = f"duplicate key {key!r} (first defined at line {seen[key] + 1})"
                problems.append(((*loc, key), msg, where))
            else:
                seen[key] = key_node.start_mark.line
            pos.add((*loc, key), key_node.start_mark, value_node.end_mark)
            _walk_nodes(value_node, (*loc, key), pos, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            pos.add((*loc, i), item.start_mark, item.end_mark)
            _walk_nodes(item, (*loc, i), pos, problems)


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps an impossible date (``2026-13-01``, which YAML's timestamp
    pattern matches) as text, so validation reports it at its path instead of the loader
    failing with a traceback."""

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:  # type: ignore[override]
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _load_yaml(text: str, source: str) -> tuple[Any, _Positions, list[tuple[Loc, str, Any]]]:
    pos = _Positions()
    problems: list[tuple[Loc, str, Any]] = []
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, pos, problems
        pos.add((), node.start_mark, node.end_mark)
        _walk_nodes(node, (), pos, problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = "; ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError([Problem("", f"invalid YAML{where}: {what}")], source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", f"invalid YAML: {exc}")], source) from None
    finally:
        loader.dispose()
    return data, pos, problems


# --------------------------------------------------------------------------------------------
# Interpolation

UNSET_PREFIX = "environment variable "
_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


class _Interpolator:
    """Replaces ``${VAR}`` / ``${VAR:-default}`` in string values; ``$${`` is a literal ``${``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[tuple[Loc, str]] = []
        self.unset: list[Loc] = []  # paths whose value is unknown: skip their other problems
        self.secrets: dict[Loc, list[str]] = {}  # environment values used at each path

    def walk(self, value: Any, loc: Loc) -> Any:
        if isinstance(value, str):
            return self._string(value, loc)
        if isinstance(value, dict):
            return {k: self.walk(v, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, (*loc, i)) for i, v in enumerate(value)]
        return value

    def _string(self, text: str, loc: Loc) -> str:
        if "${" not in text:
            return text
        used: list[str] = []
        failed = False

        def sub(m: re.Match[str]) -> str:
            nonlocal failed
            if m.group(0) == "$${":
                return "${"
            name, default = m.group(1), m.group(2)
            if name is None:
                failed = True
                self.problems.append(
                    (
                        loc,
                        "invalid variable reference: use ${NAME}, ${NAME:-default}, "
                        "or $${ for a literal ${",
                    )
                )
                return ""
            value = self.env.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                failed = True
                self.problems.append((loc, f"{UNSET_PREFIX}{name} is not set"))
                return ""
            if value:
                used.append(value)
            return value

        result = _VAR.sub(sub, text)
        if failed:
            self.unset.append(loc)
        if used:
            self.secrets[loc] = [result, *used]
        return result


def _scrub(message: str, loc: Loc, secrets: Mapping[Loc, list[str]]) -> str:
    """Hide environment values: everywhere if long enough, and at their own path always."""
    local = [s for key, values in secrets.items() if loc[: len(key)] == key for s in values
             if s.strip()]  # a blank value hides nothing, and masking it garbles the message
    everywhere = [s for values in secrets.values() for s in values if len(s) >= 4]
    for secret in sorted({*local, *everywhere}, key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


# --------------------------------------------------------------------------------------------
# pydantic errors -> problems

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


def _message(err: Mapping[str, Any], loc: Loc, data: Any) -> str:
    """A user-facing message from a pydantic error. Never uses the error's ``input``."""
    kind, msg = err["type"], str(err["msg"])
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        return f"unknown key {key!r}{_did_you_mean(key, _known_keys(loc[:-1], data))}"
    if kind == "missing" and msg == "Field required" and loc:
        return f"missing required key {loc[-1]!r}"
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


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


# --------------------------------------------------------------------------------------------
# Public entry points


def parse_config(
    text: str,
    env: Mapping[str, str] | None = None,
    source: str = "<string>",
    *,
    needs: Collection[str] | None = None,
) -> MonitorConfig:
    """Parse and validate a config document; ``ConfigError`` lists every problem found.

    ``needs``: the top-level sections the caller uses (None: all, as ``cxmon validate``). An
    unset ``${VAR}`` elsewhere is not an error: its key is left out (its default applies) or,
    if the model requires it, left empty; so ``cxmon alerts status`` runs without the
    ``GRAFANA_TOKEN`` only ``dashboards push`` needs. If the config still does not validate,
    every unset variable is reported."""
    env = os.environ if env is None else env
    data, positions, yaml_problems = _load_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        msg = "expected a mapping of top-level keys (store, sources, metrics, detectors, ...)"
        raise ConfigError([Problem("", msg)], source)
    found: list[tuple[Loc, str, tuple[int, int]]] = list(yaml_problems)

    interp = _Interpolator(env)
    data = interp.walk(data, ())
    skipped = [] if needs is None else [u for u in interp.unset if not u or u[0] not in needs]

    def tolerated(loc: Loc, msg: str) -> bool:
        return loc in skipped and msg.startswith(UNSET_PREFIX)

    config: MonitorConfig | None = None
    errors: list[tuple[Loc, str]] = []
    left_out = list(skipped)  # first leave every skipped key out, then only optional ones
    # required keys whose empty value is refused (a token, a URL): index of their stand-in
    stood_in: dict[Loc, int] = {}
    while True:
        try:
            config = MonitorConfig.model_validate(
                _with_stand_ins(_without(data, left_out), stood_in))
            break
        except ValidationError as exc:
            errors = _problems_from(exc, data)
        failing = {loc for loc, _ in errors}
        refused = (failing & set(skipped)) - set(left_out)
        if required := failing & set(left_out):
            left_out = [loc for loc in left_out if loc not in required]
        elif refused and all(stood_in.get(loc, -1) + 1 < len(_STAND_INS) for loc in refused):
            stood_in.update({loc: stood_in.get(loc, -1) + 1 for loc in refused})
        else:
            break
    found += [(loc, msg, positions.of(loc)) for loc, msg in interp.problems
              if config is None or not tolerated(loc, msg)]
    own = len(found)
    if config is None:
        found += [(loc, msg, positions.of(loc)) for loc, msg in errors]

    # A path whose variable is unset has no value to judge: report only the unset variable,
    # and no problem elsewhere that goes away once it has a value ("api_token needs email").
    unset = interp.unset
    kept = [p for p in found[own:] if not any(p[0][: len(u)] == u for u in unset)]
    if unset and kept:
        persist = _problems_with_stand_ins(data, unset)
        kept = [p for p in kept if (p[0], p[1]) in persist]
    kept = found[:own] + kept
    if config is not None:  # pydantic's lax mode reads true as 1: a slip, not a number
        kept += [(loc, "expected a number, not a boolean", positions.of(loc))
                 for loc in _booleans_taken_as_numbers(data, config, ())]
    kept.sort(key=lambda p: p[2])  # stable: document order, then discovery order
    problems: list[Problem] = []
    for loc, msg, _ in kept:
        problem = Problem(format_path(loc), _scrub(msg, loc, interp.secrets))
        if problem not in problems:
            problems.append(problem)
    if problems or config is None:
        raise ConfigError(problems or [Problem("", "invalid config")], source)
    return config


def _booleans_taken_as_numbers(raw: Any, value: Any, loc: Loc) -> Iterator[Loc]:
    """Paths where the file has ``true``/``false`` and the validated config a number
    (``min_severity: true`` passed as 1), found by walking both side by side."""
    if isinstance(raw, bool):
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield loc
        return
    if isinstance(raw, Mapping):
        for key, item in raw.items():
            child = _validated_child(value, key)
            if child is not _MISSING:
                yield from _booleans_taken_as_numbers(item, child, (*loc, key))
    elif isinstance(raw, list) and isinstance(value, list | tuple) and len(raw) == len(value):
        for i, (item, child) in enumerate(zip(raw, value, strict=True)):
            yield from _booleans_taken_as_numbers(item, child, (*loc, i))


_MISSING = object()


def _validated_child(value: Any, key: Any) -> Any:
    """The validated value under a raw mapping key (a model field by alias or name, or a
    dict entry); ``_MISSING`` when it cannot be told."""
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            if key in (name, field.alias):
                return getattr(value, name, _MISSING)
        return _MISSING
    if isinstance(value, Mapping):
        return value.get(key, _MISSING)
    return _MISSING


_STAND_IN = "unset-variable"
#: Stand-ins tried in turn for a required key of a section the command does not use: plain
#: text, then a database URL, then an HTTP URL (a source's ``url`` or ``base_url``).
_STAND_INS = (_STAND_IN, "sqlite://", "http://unset-variable.invalid")


def _with_stand_ins(data: Any, locs: Iterable[Loc] | Mapping[Loc, int]) -> Any:
    """A copy of ``data`` with a stand-in value at ``locs`` (a mapping: the index into
    ``_STAND_INS`` per path): a required key of a section the command does not use (a Slack
    ``token`` for ``alerts status``) that refuses an empty value must not stop the command."""
    filled = copy.deepcopy(data)
    for loc in locs:
        node = filled
        for el in loc[:-1]:
            node = _child(node, el)
        if isinstance(node, dict | list) and loc:
            which = locs[loc] if isinstance(locs, Mapping) else 0
            node[loc[-1]] = _STAND_INS[which]  # type: ignore[index]
    return filled


def _problems_with_stand_ins(data: Any, unset: list[Loc]) -> set[tuple[Loc, str]]:
    """The problems left when every path with an unset variable holds a stand-in value."""
    filled = _with_stand_ins(data, unset)
    try:
        MonitorConfig.model_validate(filled)
    except ValidationError as exc:
        return set(_problems_from(exc, filled))
    return set()


def _without(data: Any, locs: Iterable[Loc]) -> Any:
    """A copy of ``data`` without the mapping keys at ``locs`` (list items stay)."""
    out = copy.deepcopy(data)
    for loc in locs:
        node = out
        for el in loc[:-1]:
            node = _child(node, el)
        if isinstance(node, dict) and loc:
            node.pop(loc[-1], None)
    return out


def load_config(
    path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    needs: Collection[str] | None = None,
) -> MonitorConfig:
    """Read and validate the config file at ``path`` (``env`` defaults to ``os.environ``;
    ``needs``: the sections whose unset variables are errors, see :func:`parse_config`).

    Relative file paths in sources (a ``files`` source's ``path``/``base_dir``, a
    ``credentials_file``) are taken from the config file's folder, not the working directory,
    so ``cxmon run`` from cron finds the same files. (The ``store`` URL is not changed: a
    relative SQLite path is taken from the working directory.)"""
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem("", f"config file not found: {name}")], name) from None
    except UnicodeDecodeError as exc:
        msg = f"config file is not UTF-8 text: {exc.reason}"
        raise ConfigError([Problem("", msg)], name) from None
    except OSError as exc:
        msg = f"cannot read config file: {exc.strerror or exc}"
        raise ConfigError([Problem("", msg)], name) from None
    config = parse_config(text, env, source=name, needs=needs)
    folder = Path(name).resolve().parent
    config.sources = {k: src.resolve_paths(folder) for k, src in config.sources.items()}
    return config


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
    for key, classes in (("sources", source_classes), ("detectors", detector_classes)):
        if not classes:
            schema["properties"][key]["additionalProperties"] = {
                "not": {},
                "description": f"no {key[:-1]} types are registered",
            }
    return schema
