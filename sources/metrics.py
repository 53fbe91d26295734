"""Per-source Prometheus metrics: what each poll brought in, what was thrown away, retries,
and how fresh the data is.

Poll latency and poll errors by kind are recorded by the exporter's ``poll_timer``
(``cxmon_source_poll_seconds``, ``cxmon_source_poll_errors_total`` in
:mod:`dashboards.exporter`); this module adds the row-level and freshness side. The registry
is injected (client_python style): ``SourceMetrics(registry=exporter.registry)`` puts these on
the same ``/metrics``; tests use a fresh one.

``cxmon_source_rows_total{source,cx_metric}``                rows returned by polls
``cxmon_source_rows_rejected_total{source,cx_metric,reason}`` rows dropped by validation
``cxmon_source_records_skipped_total{source,reason}``        records a connector could not read
``cxmon_source_http_requests_total{source}``                 HTTP requests (SDK: calls), retries
``cxmon_source_http_retries_total{source}``                  requests retried after 429/5xx/timeouts
                                                             (both for HTTP and SDK sources only)
``cxmon_source_polls_total{source,cx_metric,outcome}``       ok / empty / error
``cxmon_source_last_data_timestamp_seconds{source,cx_metric}`` end of the newest bucket with rows
``cxmon_source_no_data{source,cx_metric}``                   1 while the metric is stale
``cxmon_source_lag_seconds{source,cx_metric}``               now minus the newest stored point

The cxmon metric is the ``cx_metric`` label, as on every other cxmon family (the exporter's
``cxmon_ticks_total{cx_metric,outcome}`` ...), so PromQL joins them ``on(cx_metric)``; the
exporter chose ``cx_metric`` because a series' own labels may include one named ``metric``.
(These families used ``metric`` before; renamed while cxmon is pre-release, without a shim.)

The lag is computed when ``/metrics`` is scraped, from the injected clock: a gauge set at each
tick would stop growing exactly when ticks stop (a hung scheduler), which is when it matters.
"""

from __future__ import annotations

import threading
from collections import Counter as PyCounter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.clock import Clock, SystemClock
from sources.base import Source

OUTCOMES = ("ok", "empty", "error")
#: The label naming the cxmon metric: the same as ``dashboards.exporter.METRIC_LABEL`` (kept
#: here so sources do not import dashboards; a test checks they agree).
METRIC_LABEL = "cx_metric"
LAG = "cxmon_source_lag_seconds"
LAG_HELP = ("Seconds between now and the timestamp (bucket start) of the newest point stored "
            "for the metric.")


class _LagCollector(Collector):
    """``cxmon_source_lag_seconds`` per (source, metric), computed at scrape time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.newest: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def update(self, source: str, metric: str, newest: datetime) -> None:
        """Keep the newest point time seen (a re-poll of older data must not lower it)."""
        with self._lock:
            prev = self.newest.get((source, metric))
            self.newest[(source, metric)] = newest if prev is None else max(prev, newest)

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(LAG, LAG_HELP, labels=["source", METRIC_LABEL])

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(LAG, LAG_HELP, labels=["source", METRIC_LABEL])
        now = self.clock.now()
        with self._lock:
            items = sorted(self.newest.items())
        for (source, metric), newest in items:
            family.add_metric([source, metric], (now - newest).total_seconds())
        yield family


class SourceMetrics:
    """The collectors, and :meth:`observe` to feed them after each tick."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 clock: Clock | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rows = Counter("cxmon_source_rows", "Rows returned by source polls.",
                            ["source", METRIC_LABEL], registry=r)
        self.rejected = Counter("cxmon_source_rows_rejected",
                                "Rows dropped by validation, by reason.",
                                ["source", METRIC_LABEL, "reason"], registry=r)
        self.skipped = Counter("cxmon_source_records_skipped",
                               "Records a connector could not read (skipped, counted).",
                               ["source", "reason"], registry=r)
        self.requests = Counter("cxmon_source_http_requests",
                                "HTTP requests sent by a source, retries included.",
                                ["source"], registry=r)
        self.retries = Counter("cxmon_source_http_retries",
                               "HTTP requests retried after 429, 5xx or a timeout.",
                               ["source"], registry=r)
        self.polls = Counter("cxmon_source_polls", "Polls by outcome (ok, empty, error).",
                             ["source", METRIC_LABEL, "outcome"], registry=r)
        self.last_data = Gauge("cxmon_source_last_data_timestamp_seconds",
                               "Unix time at which the newest bucket with rows ended.",
                               ["source", METRIC_LABEL], registry=r)
        self.no_data = Gauge("cxmon_source_no_data", "1 while a metric gets no data.",
                             ["source", METRIC_LABEL], registry=r)
        self.lag = _LagCollector(clock or SystemClock())
        r.register(self.lag)
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, int, PyCounter[str]]] = {}

    def declare(self, source: str, metric: str) -> None:
        """Make a (source, metric) pair visible at 0 before its first poll."""
        self.rows.labels(source, metric)
        for outcome in OUTCOMES:
            self.polls.labels(source, metric, outcome)
        self.no_data.labels(source, metric).set(0)

    def observe(
        self,
        source_name: str,
        source: Source | None,
        result: Any,
        *,
        stale: bool | None = None,
        last_data_end: datetime | None = None,
    ) -> None:
        """Record one tick's poll (``result`` is a :class:`~monitor.pipeline.TickResult`).

        ``stale`` defaults to whether the tick raised a ``no_data`` anomaly. The lag gauge
        follows ``result.newest_point`` (the newest stored point after the tick)."""
        metric = result.metric
        if result.skipped:
            return
        if stale is None:
            anomalies = getattr(result, "anomalies", None) or ()
            stale = any(getattr(a, "kind", "") == "no_data" for a in anomalies)
        outcome = "error" if result.error else ("ok" if result.rows_in else "empty")
        self.polls.labels(source_name, metric, outcome).inc()
        if result.rows_in:
            self.rows.labels(source_name, metric).inc(result.rows_in)
        for reason, n in (result.rejected or {}).items():
            self.rejected.labels(source_name, metric, reason).inc(n)
        self.no_data.labels(source_name, metric).set(1 if stale else 0)
        if last_data_end is not None:
            self.last_data.labels(source_name, metric).set(last_data_end.timestamp())
        newest = getattr(result, "newest_point", None)
        if newest is not None:
            self.lag.update(source_name, metric, newest)
        if source is not None:
            self._observe_source(source_name, source)

    def _observe_source(self, name: str, source: Source) -> None:
        """Counters kept by the source itself (HTTP client, skipped records): add the delta.

        The HTTP families get a series only for an HTTP-based source (one with an
        ``HttpClient``, possibly not created yet, or an SDK source's call counts): a SQL or
        files source exported ``cxmon_source_http_requests_total`` at 0 for ever."""
        # an HttpClient's counts, or an SDK source's (Salesforce, Google Analytics)
        is_http = hasattr(source, "_http") or hasattr(source, "calls")
        http = getattr(source, "_http", None) or getattr(source, "calls", None)
        requests = int(getattr(http, "requests", 0) or 0)
        retries = int(getattr(http, "retries", 0) or 0)
        skipped: PyCounter[str] = PyCounter(getattr(source, "skipped", None) or {})
        with self._lock:
            prev_req, prev_retry, prev_skip = self._seen.get(name, (0, 0, PyCounter()))
            if is_http:
                # fewer than last time: the client was recreated, its counts restarted
                self.requests.labels(name).inc(requests - prev_req if requests >= prev_req
                                               else requests)
                self.retries.labels(name).inc(retries - prev_retry if retries >= prev_retry
                                              else retries)
            for reason, n in skipped.items():
                delta = n - prev_skip.get(reason, 0)
                if delta > 0:
                    self.skipped.labels(name, reason).inc(delta)
            self._seen[name] = (requests, retries, skipped.copy())
