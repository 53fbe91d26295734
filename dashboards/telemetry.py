"""Wiring of the exporter into ``cxmon run`` / ``cxmon demo``: one registry, one ``/metrics``.

:class:`Telemetry` owns the :class:`~dashboards.exporter.Exporter` and the per-source metrics
of :mod:`sources.metrics` on the same registry, wraps the sources so polls are timed, and is
fed every :class:`~monitor.pipeline.TickResult` through :meth:`on_tick`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from dashboards.exporter import Exporter
from sources.metrics import SourceMetrics
from sources.registry import create as create_source

if TYPE_CHECKING:
    from alerts.outbox import DeliveryReport
    from monitor.clock import Clock
    from monitor.config import MonitorConfig
    from monitor.pipeline import TickResult
    from monitor.store import Store
    from sources.base import Source

log = logging.getLogger(__name__)


class Telemetry:
    """Exporter + source metrics for one config; ``sources`` go to ``Pipeline(sources=...)``."""

    def __init__(
        self,
        config: MonitorConfig,
        store: Store | None = None,
        *,
        registry: CollectorRegistry | None = None,
        sources: dict[str, Source] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.exporter = Exporter.from_config(config, registry=registry, clock=clock)
        self._raw = sources or {n: create_source(n, c) for n, c in config.sources.items()}
        self.sources: dict[str, Any] = self.exporter.instrument_sources(self._raw)
        self._metric_source = {m.name: m.source for m in config.metrics}
        self.source_metrics = SourceMetrics(registry=self.exporter.registry, clock=clock)
        for m in config.metrics:
            self.source_metrics.declare(m.source, m.name)
        self._seed_lag()

    def _seed_lag(self) -> None:
        """The newest stored point of every metric, so ``cxmon_source_lag_seconds`` is right
        from the first scrape after a restart (a tick with nothing new to poll says nothing
        about it), and each metric's last good tick, so a metric whose every tick fails after
        a restart shows as stale on the health dashboard instead of having no value. Never
        raises: telemetry must not stop the monitor from starting."""
        if self.store is None:
            return
        try:
            good = self.store.last_good_ticks()
        except Exception:
            log.exception("exporter: could not read the last good ticks")
            good = {}
        for m in self.config.metrics:
            if m.name in good:
                self.exporter.record_good_tick(m.name, good[m.name])
        for m in self.config.metrics:
            try:
                newest = self.store.last_point_time(m.name)
            except Exception:
                log.exception("exporter: could not read the newest point of %s", m.name)
                return
            if newest is not None:
                self.source_metrics.lag.update(m.source, m.name, newest)

    def on_tick(self, result: TickResult) -> None:
        """Feed one tick to every collector (never raises: telemetry must not stop ticks)."""
        try:
            self.exporter.observe(result)
            if not result.skipped:
                name = self._metric_source.get(result.metric, "")
                self.source_metrics.observe(
                    name, self._raw.get(name), result,
                    last_data_end=result.until if result.rows_in else None,
                )
            if self.store is not None:
                self.exporter.sync_store(self.store)
        except Exception:
            log.exception("exporter: could not record the tick of %s", result.metric)

    def on_deliver(self, report: DeliveryReport) -> None:
        """After a delivery pass: what its flush enqueued, and the outbox counts now (the
        scheduler's delivery job runs outside any tick; never raises)."""
        try:
            self.exporter.observe_enqueued(report.enqueued)
            self.exporter.observe_attempts(report.attempts)
            if self.store is not None:
                self.exporter.sync_store(self.store)
        except Exception:
            log.exception("exporter: could not record a delivery pass")

    def chain(self, callback: Callable[[TickResult], None] | None) -> Callable[[TickResult], None]:
        """An ``on_tick`` that records the tick, then calls ``callback``."""

        def on_tick(result: TickResult) -> None:
            self.on_tick(result)
            if callback is not None:
                callback(result)

        return on_tick

    def serve(self) -> int | None:
        """Start ``/metrics``, ``/healthz`` and ``/readyz`` as configured; the port, or None
        when disabled or the address is taken (logged; the monitor runs on without the exporter)."""
        ex = self.config.exporter
        if not ex.enabled:
            return None
        try:
            port = self.exporter.start(ex.address, ex.port)
        except OSError as exc:
            log.warning("exporter: cannot listen on %s:%s (%s); /metrics is off",
                        ex.address, ex.port, exc)
            return None
        log.info("exporter: http://%s:%d/metrics", ex.address, port)
        return port

    def stop(self) -> None:
        self.exporter.stop()


__all__ = ["Telemetry"]
