"""The model of the whole config file, assembled from its sections.

``MonitorConfig`` is what the rest of cxmon receives; it runs the plugin validation and the
cross-section checks and answers look-ups by metric and detector name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, SerializeAsAny, field_validator, model_validator

from dashboards.config import ExporterConfig
from detectors.base import DetectorConfig
from detectors.calendar import CalendarConfig, Calendars
from detectors.registry import config_class as detector_config_class
from detectors.registry import detector_types
from monitor.config.alerting import AlertingConfig
from monitor.config.checks import (
    _check_calendar_label,
    _check_connections,
    _check_exported,
    _check_jitter,
    _check_metrics,
)
from monitor.config.connections import (
    ConnectionConfig,
    GrafanaConfig,
    StoreConfig,
    merged_options,
)
from monitor.config.display import DisplayConfig
from monitor.config.fields import _STRICT
from monitor.config.metric import MetricConfig
from monitor.config.plugins import _default_detector, _validate_plugins
from monitor.config.runtime import ExecutorConfig, LocalExecutorConfig, SchedulerConfig
from monitor.config.validator_errors import _validate_with_checks
from monitor.model import ValueKind
from sources.base import SourceConfig
from sources.registry import config_class as source_config_class
from sources.registry import source_types


class MonitorConfig(BaseModel):
    """The whole config file."""

    model_config = _STRICT

    store: StoreConfig = Field(default_factory=StoreConfig)
    #: Settings sources share, named by a source's ``connection:`` (connections.py)
    connections: dict[str, ConnectionConfig] = Field(default_factory=dict)
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
    #: the ``include:`` files merged in (monitor/config/includes.py), to name where a path is
    _included: Any = PrivateAttr(None)

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
                                       + _check_exported(d) + _check_calendar_label(d)
                                       + _check_connections(d))
        for name, src in result.sources.items():  # a source's own storage_options win
            if (shared := result.connections.get(getattr(src, "connection", None) or "")):
                own = getattr(src, "storage_options", {})
                result.sources[name] = src.model_copy(update={
                    "storage_options": merged_options(shared.storage_options, own)})
        if "default" not in result.detectors and (default := _default_detector()) is not None:
            result.detectors["default"] = default
        return result

    def used_detectors(self) -> list[str]:
        """The detector names some metric lists (a paused one too), in definition order."""
        used = {n for m in self.metrics for n in m.detectors}
        return [n for n in self.detectors if n in used]

    def unused_detectors(self) -> list[str]:
        """The detectors the file defines that no metric lists: usually a metric's
        ``detectors:`` that names another. Not the implicit ``default`` (nor one written
        just as it is, ``{type: robust_seasonal}``: a dumped config validates the same)."""
        used = set(self.used_detectors())
        return [n for n in self.detectors if n not in used
                and not (n == "default" and self.detectors[n] == _default_detector())]

    @property
    def active_metrics(self) -> list[MetricConfig]:
        """The metrics ``cxmon run`` polls and scores (``enabled: false`` pauses one)."""
        return [m for m in self.metrics if m.enabled]

    def ratio_metrics(self) -> frozenset[str]:
        """The names of the ratio metrics (``value: {ratio: [...]}``): their values read as
        percentages in alerts, ``cxmon anomalies``, ``feedback`` and Grafana annotations."""
        return frozenset(m.name for m in self.metrics if m.value.kind is ValueKind.RATIO)

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

    def shown_path(self, path: str) -> str:
        """A config path (``metrics[7].history``) named in the file that has it, for
        warnings: ``teams/support.yaml: metrics[1].history`` for an included file's."""
        from monitor.config.includes import shown_path

        return shown_path(self._included, path)

    def detectors_for(self, metric: MetricConfig) -> dict[str, DetectorConfig]:
        """The metric's detector configs by name, each on the metric's wall clock
        (``timezone``) unless the detector's own config names a zone: one shared
        ``default`` detector serves a Berlin metric and a New York one."""
        out = {}
        for name in metric.detectors:
            cfg = self.detector(name)
            if (metric.timezone is not None and "timezone" in type(cfg).model_fields
                    and "timezone" not in cfg.model_fields_set):
                cfg = cfg.model_copy(update={"timezone": metric.timezone})
            out[name] = cfg
        return out

    def detector(self, name: str) -> DetectorConfig:
        """The detector config called ``name``; ``KeyError`` lists the defined ones."""
        try:
            return self.detectors[name]
        except KeyError:
            names = ", ".join(self.detectors) or "none"
            raise KeyError(f"no detector named {name!r}; defined detectors: {names}") from None
