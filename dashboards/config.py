"""Config model of the ``exporter:`` block (used by ``monitor.config.MonitorConfig``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ExporterConfig(BaseModel):
    """The Prometheus exporter: where ``/metrics`` and ``/healthz`` are served, and the
    cardinality guard.

    ``max_series`` caps the per-series gauges (first come, first kept; points of further
    series are dropped and counted in ``cxmon_exporter_series_dropped_total``). ``metrics``
    is an opt-in list: when given, only these metrics get per-series gauges.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    address: str = Field(default="127.0.0.1", description="Interface to listen on.")
    port: int = Field(default=9464, ge=0, le=65535, description="0 picks a free port.")
    max_series: int = Field(default=10_000, ge=0, description="Cap on exported series.")
    metrics: list[str] | None = Field(
        default=None, description="Opt-in: export only these metrics (default: all)."
    )
