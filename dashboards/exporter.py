"""Prometheus exporter: every monitored series and the monitor's own health on ``/metrics``.

The exporter is fed :class:`~monitor.pipeline.TickResult` values (``Scheduler(on_tick=...)``
in ``cxmon run``, the replay loop in ``cxmon demo``) and serves them over HTTP. Nothing here
reaches back into the pipeline.

Per series (newest scored point), one gauge family per field, labelled with the metric name
as ``cx_metric`` plus the series' own labels, so PromQL can slice by journey or dimension::

    cxmon_series_value{cx_metric="checkout_dropoff_rate",channel="app",journey="checkout"}
    cxmon_series_expected / _lower / _upper / _score / _severity  (same labels)

A roll-up total has no label for the rolled-up dimension: ``channel=""`` selects it. A series
with no new point for its ttl (``exporter.series_ttl``, default three intervals of its metric
plus its delay: :func:`series_ttls`) is removed from ``/metrics`` until its next point.

Monitor health: ``cxmon_ticks_total{cx_metric,outcome}``, ``cxmon_tick_duration_seconds``,
``cxmon_rows_total``, ``cxmon_rows_rejected_total{cx_metric,reason}``,
``cxmon_late_buckets_total{cx_metric,kind}`` (``kind``: new, corrected),
``cxmon_forgotten_series_total{cx_metric}`` (series dropped after ``forget_after``),
``cxmon_anomalies_total{cx_metric,journey,severity}``,
``cxmon_incidents_opened_total{journey,severity}``, ``cxmon_incidents_open{journey,severity}``,
``cxmon_notifications{receiver,status}``, ``cxmon_source_poll_seconds{source,type}``,
``cxmon_source_poll_errors_total{source,type,kind}``,
``cxmon_detector_refit_seconds{cx_metric,detector}``,
``cxmon_detector_refit_failures_total{cx_metric,detector}``,
``cxmon_detector_fits_in_flight{cx_metric,detector}``, ``cxmon_last_tick_timestamp_seconds``,
the cardinality guard's ``cxmon_exporter_series`` / ``cxmon_exporter_series_dropped_total``,
and ``cxmon_exporter_connections_busy_total`` (connections answered 503 over the cap).

Probes: ``/healthz`` is liveness (200 while the process serves: restarting cures nothing a
failing source or receiver causes); ``/readyz`` is readiness, 200 only while every configured
metric's last tick succeeded within its window (:func:`ready_windows`), else 503 with the
metrics that are failing, stale or have not ticked yet (names and times only: never an error
text, which may quote a URL). Both read "now" from the injected clock, like the staleness.

The registry is injected (``registry=``, like client_python's own collectors), so tests use a
fresh one and other modules can add their metrics to the same ``/metrics``. The per-series
gauges are rendered by :class:`SeriesGauges` straight to the text format (100,000 series in
well under the 2 s scrape budget); it is also a regular collector if you register it.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.bounded_http import BoundedHTTPServer, DeadlineHandler, Monotonic
from monitor.frames import REJECT_REASONS
from monitor.model import SEVERITY_LEVELS, parse_series_key, severity_name

if TYPE_CHECKING:
    from datetime import datetime

    from monitor.clock import Clock
    from monitor.config import MonitorConfig
    from monitor.pipeline import TickResult
    from monitor.store import Store
    from sources.base import PollRequest, Source

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 9464
#: Seconds a client may take for its whole request (line and headers) before it is dropped,
#: and again for reading the answer (:mod:`monitor.bounded_http`).
READ_TIMEOUT = 10.0
#: Connections served at once (scrapers, probes); more get an immediate 503.
MAX_CONNECTIONS = 16
DEFAULT_MAX_SERIES = 10_000

#: The label that carries the cxmon metric name on every per-series gauge.
METRIC_LABEL = "cx_metric"
#: Field of the score frame -> exported gauge name.
SERIES_FIELDS: dict[str, str] = {
    "value": "cxmon_series_value",
    "expected": "cxmon_series_expected",
    "lower": "cxmon_series_lower",
    "upper": "cxmon_series_upper",
    "score": "cxmon_series_score",
    "severity": "cxmon_series_severity",
}
_FIELD_HELP = {
    "value": "Newest value of the monitored series (the KPI).",
    "expected": "What the detector expected for the newest point.",
    "lower": "Lower edge of the expected band for the newest point.",
    "upper": "Upper edge of the expected band for the newest point.",
    "score": "Anomaly score of the newest point, in [0, 1] (1 - tail probability).",
    "severity": "Severity of the newest point, 0-100 (same number = same rarity).",
}
#: Severity bands used as the ``severity`` label of counters (bounded cardinality).
SEVERITY_BANDS = tuple(name for _, name in reversed(SEVERITY_LEVELS))


def severity_band(severity: float) -> str:
    """A 0-100 severity as one of four bands (``low`` < 25 <= ``medium`` < 50 <= ``high`` <
    75 <= ``critical``): :func:`monitor.model.severity_name`, as everywhere.

    >>> severity_band(10), severity_band(25), severity_band(60), severity_band(99)
    ('low', 'medium', 'high', 'critical')
    """
    return severity_name(severity)


def _escape(value: str) -> str:
    if "\\" not in value and '"' not in value and "\n" not in value:
        return value
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    """A float in the exposition format (``NaN``, ``+Inf``, ``-Inf``, shortest repr)."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def series_labels(key: str) -> dict[str, str]:
    """The Prometheus labels of a series key: its labels plus ``cx_metric``.

    >>> series_labels('csat{channel="app",journey="support"}')
    {'cx_metric': 'csat', 'channel': 'app', 'journey': 'support'}
    """
    metric, labels = parse_series_key(key)
    return {METRIC_LABEL: metric, **labels}


#: Default staleness of a series: this many intervals of its metric without a new point.
STALE_INTERVALS = 3


def series_ttls(config: MonitorConfig) -> dict[str, float]:
    """Seconds without a new point after which each metric's series leave ``/metrics``:
    ``exporter.series_ttl`` when set (``0s``: never), else :data:`STALE_INTERVALS` intervals
    of the metric plus its ``delay`` (a series that stopped arriving, or a metric since removed
    from the config, must not keep its last severity forever)."""
    ex = getattr(config, "exporter", None)
    fixed = getattr(ex, "series_ttl", None)
    if fixed is not None:
        return {m.name: fixed.total_seconds() for m in config.metrics}
    return {m.name: (STALE_INTERVALS * m.interval + m.delay).total_seconds()
            for m in config.metrics}


#: ``/readyz``: a metric is ready while its last good tick is at most this many intervals old
#: (the scheduler ticks once per interval; one late or failed-and-retried tick is tolerated).
READY_INTERVALS = STALE_INTERVALS
#: ...and never less than this (seconds): a 1-minute metric must not flap to 503 whenever one
#: long tick of another metric (history learning, a catch-up) holds the scheduler's lock.
#: ``exporter.ready_after`` replaces the whole rule with one duration for every metric.
READY_MIN_WINDOW = 600.0


def ready_windows(config: MonitorConfig) -> dict[str, float]:
    """Seconds after its last good tick at which each metric makes ``/readyz`` answer 503:
    ``exporter.ready_after`` when set, else ``max(READY_INTERVALS * interval,
    READY_MIN_WINDOW)``. The delay is not added: it shifts when ticks run, not how often."""
    fixed = getattr(getattr(config, "exporter", None), "ready_after", None)
    return {m.name: fixed.total_seconds() if fixed is not None
            else max(READY_INTERVALS * m.interval.total_seconds(), READY_MIN_WINDOW)
            for m in config.active_metrics}  # a paused metric is not waited for


def _iso(ts: float) -> str:
    """Unix seconds as ISO 8601 UTC (``Z``), for the probe bodies.

    >>> _iso(1767571200.0)
    '2026-01-05T00:00:00Z'
    """
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


#: Series per pre-rendered block of sample lines.
BLOCK = 2048


class SeriesGauges(Collector):
    """The per-series gauges, with a cardinality guard.

    At most ``max_series`` series are kept (first come, first kept); a point of any other
    series is dropped and counted per metric in ``dropped``. ``metrics``, when given, is an
    opt-in list: only those metrics are exported at all (others are not counted as dropped).

    The text format is produced when values are set, not when they are scraped: each sample
    line is formatted on update, and the lines of every block of :data:`BLOCK` series are
    encoded again only when one of them changed. A scrape hands out the ready blocks, so its
    cost is copying bytes, whatever the number of series.
    """

    def __init__(
        self,
        max_series: int = DEFAULT_MAX_SERIES,
        metrics: Iterable[str] | None = None,
        *,
        ttl: float | Mapping[str, float] | None = None,
    ) -> None:
        self.max_series = int(max_series)
        self.metrics = frozenset(metrics) if metrics is not None else None
        # seconds without a new point after which a series is removed, per metric (a
        # mapping: metrics not in it never expire) or for all; None / <= 0: never
        self.ttl = ttl
        self._lock = threading.Lock()
        self._index: dict[str, int] = {}
        self._labels: list[dict[str, str]] = []
        self._seen: list[float] = []  # when each series last got a point (clock seconds)
        self._deadline: list[float] = []  # _seen + its ttl (inf: never expires)
        self._check_after = math.inf  # no series can expire before this
        self._prefix: list[list[str]] = [[] for _ in SERIES_FIELDS]  # 'name{labels} '
        self._values: dict[str, list[float]] = {f: [] for f in SERIES_FIELDS}
        self._lines: list[list[str]] = [[] for _ in SERIES_FIELDS]  # 'name{labels} value'
        self._blocks: list[list[bytes]] = [[] for _ in SERIES_FIELDS]  # encoded lines
        self._headers = [
            f"# HELP {name} {_FIELD_HELP[field]}\n# TYPE {name} gauge\n".encode()
            for field, name in SERIES_FIELDS.items()
        ]
        self.dropped: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._index)

    def wants(self, metric: str) -> bool:
        return self.metrics is None or metric in self.metrics

    def ttl_of(self, metric: str) -> float:
        """Seconds without a point after which a series of ``metric`` is removed (inf: never)."""
        ttl = self.ttl.get(metric) if isinstance(self.ttl, Mapping) else self.ttl
        return float(ttl) if ttl is not None and ttl > 0 else math.inf

    def update(
        self, rows: Iterable[tuple[str, Sequence[float]]], now: float | None = None
    ) -> dict[str, int]:
        """Set the newest point of each ``(series_key, (value, expected, lower, upper, score,
        severity))``; returns the points dropped by the guard in this call, per metric.
        ``now`` (clock seconds, default ``time.time()``) starts each series' staleness over."""
        now = time.time() if now is None else float(now)
        dropped: dict[str, int] = {}
        touched: set[int] = set()
        with self._lock:
            columns = list(self._values.values())
            for key, fields in rows:
                i = self._index.get(key)
                if i is None:
                    labels = series_labels(key)
                    metric = labels[METRIC_LABEL]
                    if not self.wants(metric):
                        continue
                    if len(self._index) >= self.max_series:
                        self.dropped[metric] = self.dropped.get(metric, 0) + 1
                        dropped[metric] = dropped.get(metric, 0) + 1
                        continue
                    i = self._index[key] = len(self._labels)
                    self._labels.append(labels)
                    ttl = self.ttl_of(metric)
                    self._seen.append(now)
                    self._deadline.append(now + ttl)
                    self._check_after = min(self._check_after, now + ttl)
                    inner = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "} "
                    for prefixes, lines, values, name in zip(
                        self._prefix, self._lines, columns, SERIES_FIELDS.values(), strict=True
                    ):
                        prefixes.append(name + inner)
                        lines.append("")
                        values.append(math.nan)
                else:  # a later deadline: _check_after stays a (lower) bound
                    self._deadline[i] += now - self._seen[i]
                    self._seen[i] = now
                    self._check_after = min(self._check_after, self._deadline[i])
                touched.add(i // BLOCK)
                for j, x in enumerate(fields):
                    x = float(x)
                    columns[j][i] = x
                    text = repr(x)
                    if text[-1] in "nf":  # nan, inf, -inf
                        text = _fmt(x)
                    self._lines[j][i] = self._prefix[j][i] + text
            for blocks, lines in zip(self._blocks, self._lines, strict=True):
                while len(blocks) * BLOCK < len(lines):
                    blocks.append(b"")
                for b in touched:
                    blocks[b] = ("\n".join(lines[b * BLOCK:(b + 1) * BLOCK]) + "\n").encode()
        return dropped

    def expire(self, now: float | None = None) -> list[str]:
        """Remove the series whose ttl passed without a new point (a series that stopped
        arriving, or whose metric left the config); returns their keys. Cheap when nothing
        is due: the earliest deadline is kept, the series are scanned only once it passed."""
        now = time.time() if now is None else float(now)
        if now <= self._check_after:  # a series expires once *more* than its ttl passed
            return []
        with self._lock:
            keep = [i for i, d in enumerate(self._deadline) if d >= now]
            self._check_after = min((self._deadline[i] for i in keep), default=math.inf)
            if len(keep) == len(self._deadline):
                return []
            kept = set(keep)
            gone = [k for k, i in self._index.items() if i not in kept]
            self._compact(keep)
        return gone

    def _compact(self, keep: list[int]) -> None:
        """Keep only the series at ``keep`` (in order); re-encode every block. Under the lock."""
        keys = sorted(self._index, key=self._index.__getitem__)
        self._index = {keys[i]: n for n, i in enumerate(keep)}
        self._labels = [self._labels[i] for i in keep]
        self._seen = [self._seen[i] for i in keep]
        self._deadline = [self._deadline[i] for i in keep]
        self._prefix = [[p[i] for i in keep] for p in self._prefix]
        self._lines = [[line[i] for i in keep] for line in self._lines]
        self._values = {f: [v[i] for i in keep] for f, v in self._values.items()}
        self._blocks = [
            [("\n".join(lines[b:b + BLOCK]) + "\n").encode() for b in range(0, len(lines), BLOCK)]
            for lines in self._lines
        ]

    def render_parts(self) -> list[bytes]:
        """The gauges in the Prometheus text format, as a list of byte strings to send."""
        with self._lock:
            if not self._index:
                return []
            parts: list[bytes] = []
            for header, blocks in zip(self._headers, self._blocks, strict=True):
                parts.append(header)
                parts.extend(blocks)
            return parts

    def render(self) -> bytes:
        """The gauges in the Prometheus text format."""
        return b"".join(self.render_parts())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            labels = list(self._labels)
            columns = {f: list(v) for f, v in self._values.items()}
        for field, name in SERIES_FIELDS.items():
            fam = GaugeMetricFamily(name, _FIELD_HELP[field])
            for lbl, v in zip(labels, columns[field], strict=True):
                fam.add_sample(name, lbl, v)
            yield fam


@dataclass(frozen=True, slots=True)
class _Open:
    journey: str
    severity: str


class Exporter:
    """Holds cxmon's Prometheus metrics and serves them. Feed it with :meth:`observe`."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        max_series: int = DEFAULT_MAX_SERIES,
        metrics: Iterable[str] | None = None,
        journeys: Mapping[str, str] | None = None,
        series_ttl: float | Mapping[str, float] | None = None,
        clock: Clock | None = None,
        ready_windows: Mapping[str, float] | None = None,
    ) -> None:
        """``registry``: where the health metrics live (a fresh one by default).
        ``metrics``: opt-in list of exported metrics (default: all, up to ``max_series``).
        ``journeys``: metric -> journey label for counters of metrics whose series carry no
        journey label. ``series_ttl``: seconds without a new point after which a series'
        gauges are removed, for all metrics or per metric (None: never; :meth:`from_config`
        sets it). ``clock``: what "now" is for that and for ``/readyz`` (the wall clock by
        default). ``ready_windows``: the metrics ``/readyz`` waits for, each with the seconds
        its last good tick may be old (:func:`ready_windows`; none: always ready)."""
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.clock = clock
        self.series = SeriesGauges(max_series, metrics, ttl=series_ttl)
        self.journeys = dict(journeys or {})
        r = self.registry
        m = METRIC_LABEL
        self.ticks = Counter("cxmon_ticks", "Ticks run, by outcome (ok, error, skipped).",
                             [m, "outcome"], registry=r)
        self.connections_busy = Counter(
            "cxmon_exporter_connections_busy", "Connections to the exporter answered 503 at "
            "once because max_connections were being served.", registry=r)
        self.tick_seconds = Histogram(
            "cxmon_tick_duration_seconds", "Wall time of a tick (poll, detect, store).", [m],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=r,
        )
        self.rows = Counter("cxmon_rows", "Rows received from sources.", [m], registry=r)
        self.rows_rejected = Counter("cxmon_rows_rejected", "Bad rows skipped, by reason.",
                                     [m, "reason"], registry=r)
        self.late_buckets = Counter(
            "cxmon_late_buckets", "Already-scored buckets whose rows came late (late_window): "
            "kind=new (never scored: raise delay) or corrected.", [m, "kind"], registry=r,
        )
        self.anomalies = Counter("cxmon_anomalies", "Anomalous points, by journey and severity.",
                                 [m, "journey", "severity"], registry=r)
        self.incidents_opened = Counter("cxmon_incidents_opened", "Incidents opened.",
                                        ["journey", "severity"], registry=r)
        self.incidents_open = Gauge("cxmon_incidents_open", "Open incidents now.",
                                    ["journey", "severity"], registry=r)
        self.notifications = Gauge(
            "cxmon_notifications", "Outbox notifications by receiver and status "
            "(pending, sent, dead = failed for good).", ["receiver", "status"], registry=r,
        )
        self.notifications_sent = Counter(
            "cxmon_notifications_enqueued", "Notifications written to the outbox, by "
            "receiver (by a tick, or by the delivery job's flush of the alert groups).",
            ["receiver"], registry=r,
        )
        self.delivery_attempts = Counter(
            "cxmon_notification_attempts", "Send attempts of outbox notifications, by "
            "receiver and outcome: sent, retry (failed, will be retried with backoff), dead "
            "(failed for good: dead-lettered).", ["receiver", "outcome"], registry=r,
        )
        self.poll_seconds = Histogram(
            "cxmon_source_poll_seconds", "Latency of one poll of a source.", ["source", "type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r,
        )
        self.poll_errors = Counter(
            "cxmon_source_poll_errors", "Failed polls, by kind (retriable, missing, fatal, other).",
            ["source", "type", "kind"], registry=r,
        )
        self.refit_seconds = Histogram(
            "cxmon_detector_refit_seconds", "Time a detector spent refitting its model.",
            [m, "detector"], buckets=(0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900), registry=r,
        )
        self.refit_failures = Counter(
            "cxmon_detector_refit_failures", "Detector model fits that failed (the previous "
            "model keeps scoring; the fit is retried later).", [m, "detector"], registry=r,
        )
        self.fits_in_flight = Gauge(
            "cxmon_detector_fits_in_flight", "Model fits handed to the executor and not "
            "installed yet (after the metric's last tick); one that never falls means the "
            "executor runs nothing, e.g. a Dask cluster without workers.", [m, "detector"],
            registry=r,
        )
        self.last_tick = Gauge("cxmon_last_tick_timestamp_seconds",
                               "Unix time of the last successful tick.", [m], registry=r)
        self.series_count = Gauge("cxmon_exporter_series", "Series exported now.", registry=r)
        self.series_count.set_function(lambda: len(self.series))
        self.series_dropped = Counter(
            "cxmon_exporter_series_dropped",
            "Points not exported because the series cap (exporter.max_series) was reached.",
            [m], registry=r,
        )
        self.series_forgotten = Counter(
            # not cxmon_series_*: that prefix is the per-series gauges' (one per series key)
            "cxmon_forgotten_series", "Series forgotten after forget_after without data: "
            "their detector state and checkpoints dropped (learned afresh if they return).",
            [m], registry=r,
        )
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()
        self._server: BoundedHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.ticks_seen = 0
        self.ready_windows = dict(ready_windows or {})
        self._last_ok: dict[str, float] = {}  # metric -> its last good tick (clock seconds)
        self._failing: dict[str, float] = {}  # metric -> when its last tick failed, if it did

    @classmethod
    def from_config(
        cls,
        config: MonitorConfig,
        *,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
    ) -> Exporter:
        """An exporter set up from the ``exporter:`` block (defaults when absent)."""
        ex = getattr(config, "exporter", None)
        journeys = {m.name: m.labels["journey"] for m in config.metrics if "journey" in m.labels}
        exp = cls(
            registry=registry,
            max_series=ex.max_series if ex else DEFAULT_MAX_SERIES,
            metrics=ex.metrics if ex else None,
            journeys=journeys,
            series_ttl=series_ttls(config),
            clock=clock,
            ready_windows=ready_windows(config),
        )
        for m in config.metrics:  # every metric shows up at 0 before its first tick
            for outcome in ("ok", "error", "skipped"):
                exp.ticks.labels(m.name, outcome)
        for m in config.metrics:
            for reason in REJECT_REASONS:
                exp.rows_rejected.labels(m.name, reason)
            for kind in ("new", "corrected"):
                exp.late_buckets.labels(m.name, kind)
            exp.series_forgotten.labels(m.name)
            for detector in m.detectors:
                exp.refit_seconds.labels(m.name, detector)
                exp.refit_failures.labels(m.name, detector)
                exp.fits_in_flight.labels(m.name, detector).set(0)
        for r in config.alerting.receivers:
            exp.notifications_sent.labels(r.name)
            for status in ("pending", "sent", "dead"):
                exp.notifications.labels(r.name, status).set(0)
            for outcome in ("sent", "retry", "dead"):
                exp.delivery_attempts.labels(r.name, outcome)
        for name, src in config.sources.items():
            exp.poll_seconds.labels(name, src.type)
            exp.poll_errors.labels(name, src.type, "retriable")
            if src.type == "files":  # the only source whose data can be missing yet
                exp.poll_errors.labels(name, src.type, "missing")
        return exp

    # -- feeding ------------------------------------------------------------------------------

    def observe(self, result: TickResult) -> None:
        """Record one tick (thread-safe; call from ``on_tick``)."""
        metric = result.metric
        self.ticks_seen += 1
        if result.skipped:
            self.ticks.labels(metric, "skipped").inc()
            return
        self.ticks.labels(metric, "error" if result.error else "ok").inc()
        self.tick_seconds.labels(metric).observe(result.seconds)
        if result.rows_in:
            self.rows.labels(metric).inc(result.rows_in)
        for reason, n in result.rejected.items():
            self.rows_rejected.labels(metric, reason).inc(n)
        late = getattr(result, "late", None)
        for kind in ("new", "corrected"):
            if late is not None and getattr(late, kind):
                self.late_buckets.labels(metric, kind).inc(getattr(late, kind))
        # the pipeline's clock, not the wall clock: a replay or a fake-clock test sees its time
        finished = getattr(result, "finished_at", None)
        when = finished.timestamp() if finished is not None else self._now()
        if result.error:
            with self._lock:
                self._failing[metric] = when
            return
        self._good_tick(metric, when)
        self.observe_enqueued(getattr(result, "enqueued", None) or {})
        for a in result.anomalies:
            journey = a.labels.get("journey") or self.journeys.get(a.metric, "")
            self.anomalies.labels(a.metric, journey, severity_band(a.severity)).inc()
        for detector, seconds in (getattr(result, "refits", None) or {}).items():
            for value in seconds if isinstance(seconds, list | tuple) else [seconds]:
                self.refit_seconds.labels(metric, detector).observe(value)
        if getattr(result, "forgotten", 0):
            self.series_forgotten.labels(metric).inc(result.forgotten)
        for detector, n in (getattr(result, "refit_failures", None) or {}).items():
            self.refit_failures.labels(metric, detector).inc(n)
        for detector, n in (getattr(result, "fits_in_flight", None) or {}).items():
            self.fits_in_flight.labels(metric, detector).set(n)
        self._observe_incidents(getattr(result, "incidents", None) or ())
        scores = result.scores
        if scores is not None and len(scores):
            cols = [scores[f].to_numpy(dtype=float).tolist() for f in SERIES_FIELDS]
            rows = zip(scores["series"].tolist(), zip(*cols, strict=True), strict=True)
            for name, n in self.series.update(rows, self._now()).items():
                self.series_dropped.labels(name).inc(n)
        self.expire()

    def _now(self) -> float:
        return self.clock.now().timestamp() if self.clock is not None else time.time()

    def _good_tick(self, metric: str, when: float, *, fresh: bool = True) -> None:
        """Record a good tick at ``when`` (clock seconds); ``fresh``: it is the metric's
        latest tick, so a failure before it is over."""
        with self._lock:
            if fresh:
                self._failing.pop(metric, None)
            latest = self._last_ok[metric] = max(when, self._last_ok.get(metric, when))
        self.last_tick.labels(metric).set(latest)

    def record_good_tick(self, metric: str, when: datetime) -> None:
        """A good tick the store remembers from before a restart: without it a metric whose
        every tick fails after the restart would have no ``cxmon_last_tick_timestamp_seconds``
        (an alert on its age never fires), and ``/readyz`` would wait for a first new tick of
        metrics that ticked minutes ago. Never lowers what a tick recorded."""
        self._good_tick(metric, when.timestamp(), fresh=False)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """``(ready, body)`` for ``/readyz``. A metric is not ready when its last tick
        failed (``failing``), when its last good tick is older than its window (``stale``: the
        scheduler stopped or the tick hangs) or when it has not ticked well yet (``pending``);
        skipped ticks (backing off, nothing due) change nothing. The body names those metrics
        with their last good tick, never an error text (it may quote a URL or a query)."""
        now = self._now()
        not_ready: dict[str, dict[str, Any]] = {}
        with self._lock:
            last_ok, failing = dict(self._last_ok), dict(self._failing)
        for metric, window in sorted(self.ready_windows.items()):
            ok = last_ok.get(metric)
            if metric in failing:
                state = "failing"
            elif ok is None:
                state = "pending"
            elif now - ok > window:
                state = "stale"
            else:
                continue
            entry: dict[str, Any] = {
                "state": state,
                "last_success": None if ok is None else _iso(ok),
                "seconds_since_success": None if ok is None else round(now - ok, 3),
                "window_seconds": window,
            }
            if metric in failing:
                entry["last_failure"] = _iso(failing[metric])
            not_ready[metric] = entry
        body = {"status": "not ready" if not_ready else "ready",
                "metrics": len(self.ready_windows), "not_ready": not_ready}
        return not not_ready, body

    def expire(self) -> list[str]:
        """Remove the per-series gauges of series that got no point for their ttl (run on
        every tick and every scrape); returns their keys."""
        gone = self.series.expire(self._now())
        if gone:
            log.info("exporter: %d stale series removed from /metrics (e.g. %s)",
                     len(gone), gone[0])
        return gone

    def _observe_incidents(self, changes: Iterable[Any]) -> None:
        """Incident changes (``IncidentChange``): opened counter and the open gauge."""
        changed = False
        with self._lock:
            for change in changes:
                inc = change.incident
                if change.status == "resolved":
                    changed |= self._open.pop(inc.key, None) is not None
                    continue
                band = severity_band(inc.severity)
                journey = inc.group.get("journey", "")
                if change.status == "opened":
                    self.incidents_opened.labels(journey, band).inc()
                self._open[inc.key] = _Open(journey, band)
                changed = True
            if changed:
                self._set_open_gauge()

    def _set_open_gauge(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        for o in self._open.values():
            counts[(o.journey, o.severity)] = counts.get((o.journey, o.severity), 0) + 1
        for labels in list(self.incidents_open._metrics):  # zero the groups that closed
            if labels not in counts:
                self.incidents_open.labels(*labels).set(0)
        for (journey, band), n in counts.items():
            self.incidents_open.labels(journey, band).set(n)

    def sync_store(self, store: Store) -> None:
        """Refresh what lives in the store: outbox counts per receiver and status, and the
        open incidents (after a restart). Cheap: two grouped queries."""
        import sqlalchemy as sa

        from monitor.store import incidents_t, notifications_t

        n = notifications_t.c
        q = sa.select(n.receiver, n.status, sa.func.count()).group_by(n.receiver, n.status)
        i = incidents_t.c
        open_q = sa.select(i.key, i.journey, i.severity).where(i.status == "open")
        with store.engine.connect() as conn:
            counts = conn.execute(q).all()
            open_rows = conn.execute(open_q).all()
        for labels in list(self.notifications._metrics):
            self.notifications.labels(*labels).set(0)
        for receiver, status, count in counts:
            self.notifications.labels(receiver, status).set(count)
        with self._lock:
            self._open = {k: _Open(j or "", severity_band(s)) for k, j, s in open_rows}
            self._set_open_gauge()

    def observe_enqueued(self, by_receiver: Mapping[str, int]) -> None:
        """Count notifications written to the outbox (by a tick or a delivery pass)."""
        for receiver, n in by_receiver.items():
            if n:
                self.notifications_sent.labels(receiver).inc(n)

    def observe_attempts(self, attempts: Mapping[tuple[str, str], int]) -> None:
        """Count a delivery pass's send attempts per (receiver, outcome), so
        ``rate(cxmon_notification_attempts_total{outcome="retry"}[15m]) > 0`` pages on a
        receiver that is down before anything is dead-lettered."""
        for (receiver, outcome), n in attempts.items():
            if n:
                self.delivery_attempts.labels(receiver, outcome).inc(n)

    def observe_refit(self, metric: str, detector: str, seconds: float) -> None:
        """A detector refitted its model (for detectors with a periodic refit)."""
        self.refit_seconds.labels(metric, detector).observe(seconds)

    @contextmanager
    def poll_timer(self, source: str, type_name: str) -> Iterator[None]:
        """Time one poll; count an error by kind if it raises (the error propagates)."""
        from sources.base import FatalSourceError, MissingSourceError, RetriableSourceError

        start = time.perf_counter()
        try:
            yield
        except MissingSourceError:  # before its base class: no data yet is not an outage
            self.poll_errors.labels(source, type_name, "missing").inc()
            raise
        except RetriableSourceError:
            self.poll_errors.labels(source, type_name, "retriable").inc()
            raise
        except FatalSourceError:
            self.poll_errors.labels(source, type_name, "fatal").inc()
            raise
        except Exception:
            self.poll_errors.labels(source, type_name, "other").inc()
            raise
        finally:
            self.poll_seconds.labels(source, type_name).observe(time.perf_counter() - start)

    def instrument_sources(self, sources: Mapping[str, Source]) -> dict[str, Source]:
        """Wrap sources so their polls are timed and their errors counted."""
        return {name: _TimedSource(src, self) for name, src in sources.items()}

    # -- serving ------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The whole ``/metrics`` payload."""
        self.expire()
        return generate_latest(self.registry) + self.series.render()

    def health(self) -> dict[str, Any]:
        """``/healthz``: liveness only, always ``ok`` while the process serves (a failing
        source would fail it again after a restart); readiness is :meth:`readiness`."""
        return {"status": "ok", "ticks": self.ticks_seen, "series": len(self.series)}

    def start(self, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT, *,
              max_connections: int = MAX_CONNECTIONS, request_deadline: float | None = None,
              monotonic: Monotonic = time.monotonic) -> int:
        """Serve ``/metrics``, ``/healthz`` and ``/readyz`` in a daemon thread; returns the
        bound port (pass ``port=0`` for a free one). A client must send its request within
        ``request_deadline`` (:data:`READ_TIMEOUT`) and at most ``max_connections`` are
        served at once: a slow or silent client, or a flood of them, cannot hold the threads."""
        exporter = self

        class Handler(DeadlineHandler):

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":  # two writes: no copy of a large series payload
                    exporter.expire()
                    parts = (generate_latest(exporter.registry),
                             *exporter.series.render_parts())
                    self._send(200, parts, CONTENT_TYPE)
                elif path == "/healthz":
                    body = json.dumps(exporter.health()).encode()
                    self._send(200, body, "application/json")
                elif path == "/readyz":
                    ready, payload = exporter.readiness()
                    self._send(200 if ready else 503, json.dumps(payload).encode(),
                               "application/json")
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /readyz\n",
                               "text/plain")

            def _send(self, code: int, body: bytes | tuple[bytes, ...], ctype: str) -> None:
                parts = body if isinstance(body, tuple) else (body,)
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(sum(len(p) for p in parts)))
                self.end_headers()
                for part in parts:
                    self.wfile.write(part)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("exporter: " + format, *args)

        self._server = BoundedHTTPServer(
            (address, port), Handler, max_connections=max_connections,
            request_deadline=request_deadline or READ_TIMEOUT, monotonic=monotonic,
            on_busy=self.connections_busy.inc)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="cxmon-exporter", daemon=True
        )
        self._thread.start()
        return self.port

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("exporter is not serving")
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _TimedSource:
    """A source whose ``fetch`` is timed by the exporter; everything else is delegated."""

    def __init__(self, inner: Source, exporter: Exporter) -> None:
        self._inner = inner
        self._exporter = exporter

    def fetch(self, request: PollRequest) -> Any:
        inner = self._inner
        with self._exporter.poll_timer(inner.name, getattr(inner, "type_name", "unknown")):
            return inner.fetch(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_MAX_SERIES",
    "DEFAULT_PORT",
    "METRIC_LABEL",
    "READY_INTERVALS",
    "READY_MIN_WINDOW",
    "SERIES_FIELDS",
    "STALE_INTERVALS",
    "Exporter",
    "SeriesGauges",
    "ready_windows",
    "series_labels",
    "series_ttls",
    "severity_band",
]
