"""Config model of the ``exporter:`` block (used by ``monitor.config.MonitorConfig``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.durations import Duration


class ExporterConfig(BaseModel):
    """The Prometheus exporter: where ``/metrics`` and ``/healthz`` are served, and the
    cardinality guard.

    ``max_series`` caps the per-series gauges (first come, first kept; points of further
    series are dropped and counted in ``cxmon_exporter_series_dropped_total``). ``metrics``
    is an opt-in list: when given, only these metrics get per-series gauges.

    ``series_ttl``: a series that gets no new point for this long leaves ``/metrics`` (its
    gauges are removed). Default (unset): three intervals of its metric plus its ``delay``;
    ``0s`` keeps every series until a restart.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    address: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=9464, ge=0, le=65535, description="0 picks a free port.")
    max_series: int = Field(default=10_000, ge=0, description="Cap on exported series.")
    metrics: list[str] | None = Field(
        default=None, description="Opt-in: export only these metrics (default: all)."
    )
    series_ttl: Duration | None = Field(
        default=None,
        description="Remove a series' gauges after this long without a new point "
        "(default: 3 intervals of its metric + delay; 0s: never).",
    )

    ready_after: Duration | None = Field(
        default=None,
        description="/readyz answers 503 for a metric whose last good tick is older than this "
        "(default: 3 intervals of the metric, at least 10 minutes).",
    )

    @field_validator("ready_after")
    @classmethod
    def _ready_after_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be positive (leave it out for the per-metric default)")
        return value

    @field_validator("series_ttl")
    @classmethod
    def _ttl_non_negative(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError("must not be negative")
        return value
