"""Config of one metric (a KPI) and of how its value is computed from rows.

The ``metrics:`` entries are the heart of the file; their model and the four YAML forms of
``value`` are kept together so one reading tells what a metric accepts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from detectors.postrules import MissingPolicy, WindowRule
from monitor.config.fields import (
    _STRICT,
    METRIC_NAME,
    Column,
    DisplayName,
    LabelName,
    _non_negative,
    _one_line,
    _positive,
    _unique,
)
from monitor.config.validator_errors import _raise
from monitor.durations import Duration, format_duration
from monitor.model import Direction, ValueKind
from monitor.zones import Zone

#: A unit or a volume's noun in alert text (``ms``, ``responses``): one short line.
UnitText = Annotated[str, Field(min_length=1, max_length=30), AfterValidator(_one_line)]

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
    min_volume: float = Field(default=0.0, ge=0)  # min denominator / count (ratio, mean) to alert
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
    # How alert messages print the values (alerts/numbers.py; README "Config reference"):
    #: text after each value (``%``, ``ms``, ``tickets``, ``EUR``); a ratio reads as a
    #: percentage without it, as a plain number with any other unit (an average order value)
    unit: UnitText | None = Field(default=None, description=(
        "text after each value in alerts: %, ms, tickets, EUR (a ratio: a plain number)"))
    #: the top of the value's scale: a CSAT out of 5 prints ``3.53 / 5``
    scale_max: float | None = Field(default=None, gt=0, description=(
        "the top of the value's scale: a CSAT out of 5 prints 3.53 / 5"))
    #: the bottom of that scale (default 0): an NPS from -100 to 100, a CSAT from 1 to 5;
    #: shown bands stay within [scale_min, scale_max]
    scale_min: float | None = Field(default=None, description=(
        "the bottom of the value's scale (default 0 with scale_max): -100 for an NPS, "
        "1 for a CSAT of 1 to 5"))
    #: digits after the point (default: whole numbers for a sum of whole counts, else 3
    #: significant digits)
    decimals: int | None = Field(default=None, ge=0, le=6, description=(
        "digits after the point in alerts (default: a sum of whole counts prints whole)"))
    #: what the volume behind a ratio or mean counts: ``(from 14 responses)`` (default: the
    #: denominator or count column, "responses" for a mean over rows)
    volume_unit: UnitText | None = Field(default=None, description=(
        "what the volume behind a ratio or mean counts: (from 14 responses)"))
    #: false: the top-level ``calendar`` (holidays, events) does not apply to this metric
    calendar: bool = True
    #: whose wall clock the seasonal detectors' time-of-day and time-of-week slots follow
    #: (an IANA name): the shop's 9:00 peak stays the 9:00 peak across summer time
    timezone: Zone | None = Field(default=None, description=(
        "IANA time zone whose wall clock the seasonal detectors follow (robust_seasonal, "
        "seasonal_baseline, novelty, prophet), e.g. Europe/Berlin; default UTC"))
    #: false: paused. Kept in the config (its stored history, dashboards, routes and
    #: ``cxmon backtest``, to tune it before it goes live) but neither polled nor scored by
    #: ``cxmon run``, and left out of ``/readyz``: a broken source or a metric under review
    enabled: bool = True
    # -- forgetting series (monitor/forgetting.py) --
    #: a series without a point for this long (bucket time) is forgotten: its detector and
    #: post-rule state, in memory and in the store; if it comes back it is learned afresh.
    #: None: the default (30 days, or twice ``no_data_after`` if that is longer); 0s: never
    forget_after: Duration | None = None

    @field_validator("forget_after")
    @classmethod
    def _forget_after_after_no_data(cls, value: timedelta | None, info: ValidationInfo
                                    ) -> timedelta | None:
        """Forgetting must come after the "no data" alert: a forgotten series can never
        be reported missing again, so forgetting first would swallow that alert."""
        if value is None or _non_negative(value) == timedelta(0):
            return value
        no_data = info.data.get("no_data_after")
        interval = info.data.get("interval") or timedelta(minutes=5)
        floor = max(no_data if no_data is not None else 3 * interval, interval)
        if value <= floor:
            raise ValueError(f"must be longer than no_data_after ({format_duration(floor)}) "
                             "so the no-data alert fires first; 0s never forgets")
        return value

    _interval_positive = field_validator("interval")(_positive)
    _delay_non_negative = field_validator("delay", "late_window", "history")(_non_negative)

    @model_validator(mode="after")
    def _display_fits_value(self) -> MetricConfig:
        """Settings that cannot apply to this metric's value are errors, all at once: a sum
        has no volume (to name or to require), and a ratio shown as a percentage has no scale
        of its own."""
        errors = []
        if self.volume_unit is not None and self.value.kind is ValueKind.SUM:
            errors.append((("volume_unit",), "not_applicable",
                           "a sum has no volume (no denominator or count): remove volume_unit"))
        if self.min_volume > 0 and self.value.kind is ValueKind.SUM:
            # The post-rule reads the denominator or count behind a ratio or mean; a sum has
            # none, so the setting used to be accepted and silently did nothing.
            errors.append((("min_volume",), "not_applicable",
                           "a sum has no volume (no denominator or count), so min_volume "
                           "would never hold an alert back; to ignore small changes of a "
                           "count use min_abs_change (e.g. 5 more than expected)"))
        if (self.scale_max is not None and self.value.kind is ValueKind.RATIO
                and self.unit in (None, "%")):
            errors.append((("scale_max",), "not_applicable",
                           "a ratio reads as a percentage (58.7%): give it a unit other than "
                           "'%' to print it as a number out of scale_max"))
        if self.scale_min is not None and (self.scale_max is None
                                           or self.scale_min >= self.scale_max):
            errors.append((("scale_min",), "invalid",
                           "scale_min needs a scale_max above it (an NPS: scale_min: -100, "
                           "scale_max: 100)"))
        _raise("metric", errors)
        return self

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
