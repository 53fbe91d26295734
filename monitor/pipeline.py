"""The tick: poll since the cursor -> validate -> roll up -> detect -> incidents -> outbox.

Everything a tick produces (points, detector checkpoints, anomalies, incidents, outbox rows,
the new cursor and the tick record) is written in ONE transaction, so after a crash the
monitor resumes exactly where the last committed tick ended: no bucket is polled twice, no
anomaly is alerted twice, and no detected anomaly is lost (it is in the outbox).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from rich.console import Console

from alerts.dispatch import Dispatcher
from alerts.display import Names
from alerts.grouping import AlertGroups, FlushResult, next_flush_at
from alerts.notifiers.base import Notifier
from alerts.notifiers.factory import receiver_notifier
from alerts.outbox import DeliveryPolicy, DeliveryReport, OutboxWorker
from alerts.payload import anomaly_dict, incident_payload
from alerts.routing import Router, incident_group_by
from alerts.silences import active_silences
from detectors.calendar import CalendarDay
from detectors.feedback import verdicts
from detectors.postrules import PostRules
from monitor.clock import Clock, SystemClock
from monitor.config import MetricConfig, MonitorConfig
from monitor.detection import MetricDetectors
from monitor.durations import format_duration
from monitor.errors import StoreError
from monitor.forgetting import ForgetSchedule, forget_after
from monitor.frames import (
    FrameError,
    MeasureFrame,
    MeasureSpec,
    build_measure_frame,
    floor_time,
)
from monitor.incidents import (
    IncidentChange,
    IncidentTracker,
    OpenIncident,
    attribute,
    group_key,
    incident_summary,
    restore_summary,
)
from monitor.late import LateBuckets, late_buckets
from monitor.model import SEVERITY_LEVELS, Anomaly, Series, ValueKind
from monitor.staleness import DEFAULT_NO_DATA_INTERVALS, StalenessRule
from monitor.store import Store, StoreTx
from sources.base import FatalSourceError, PollRequest, RetriableSourceError, Source
from sources.metrics import SourceMetrics
from sources.registry import create as create_source

log = logging.getLogger(__name__)

#: A catch-up after downtime polls at most this many buckets at a time: the tick runs the
#: whole gap, chunk by chunk, each chunk committed (points, anomalies, incidents, alerts,
#: checkpoints, cursor) before the next is polled.
MAX_CATCHUP_BUCKETS = 2000
#: A mix shift compares the leaves' volume with their median at the same time of week over
#: this many weeks, else of day over this many days (at least USUAL_MIN_DAYS with data).
USUAL_WEEKS = 4
USUAL_DAYS = 7
USUAL_MIN_DAYS = 3
#: Backoff after consecutive failed polls of a metric: interval * 2^(n-1), capped.
MAX_BACKOFF = timedelta(hours=1)
#: A first tick's history and a catch-up are processed in chunks of about this many points
#: (series x buckets; roughly 0.5 KB of memory each while a chunk is processed) ...
HISTORY_CHUNK_POINTS = 250_000
#: ... the first chunk being this many buckets, before the number of series is known.
HISTORY_FIRST_CHUNK = 24


@dataclass(frozen=True, slots=True)
class _Prefetch:
    """A poll made ahead of its tick: the range, the rows or the error."""

    since: datetime
    until: datetime
    raw: Any
    dropped: Counter[str]
    error: BaseException | None


def chunk_buckets(series: int | None, cap: int | None = None) -> int:
    """Buckets per chunk for a metric of ``series`` series (``None``: not known yet), so a
    chunk holds about ``HISTORY_CHUNK_POINTS`` points; at most ``cap`` buckets."""
    n = HISTORY_FIRST_CHUNK if series is None else HISTORY_CHUNK_POINTS // max(1, series)
    return max(1, min(n, cap) if cap is not None else n)


@dataclass(slots=True)
class TickResult:
    """What one tick did; also recorded in the store's ``ticks`` table."""

    metric: str
    since: datetime | None = None
    until: datetime | None = None
    rows_in: int = 0
    rows_stored: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)
    notifications: int = 0
    #: The same, per receiver.
    enqueued: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    skipped: str | None = None
    seconds: float = 0.0
    #: The newest scored point of every series in the tick (SCORE_COLUMNS, first detector):
    #: value, expected, band, score and severity, for the exporter and dashboards.
    scores: pd.DataFrame | None = None
    #: First tick of a metric: anomalies before this time are history (stored, not alerted).
    silent_before: datetime | None = None
    #: Incident changes (opened / updated / resolved) committed by the tick.
    incidents: list[IncidentChange] = field(default_factory=list)
    #: Model fits installed during the tick, per detector: seconds each fit took.
    refits: dict[str, list[float]] = field(default_factory=dict)
    #: Model fits that failed during the tick, per detector (logged; retried later).
    refit_failures: dict[str, int] = field(default_factory=dict)
    #: Model fits handed out and not installed after the tick, per detector: a number that
    #: never falls means the executor runs nothing (a Dask cluster without workers).
    fits_in_flight: dict[str, int] = field(default_factory=dict)
    #: Re-polled (``late_window``) buckets that were new or corrected (stored, not scored).
    late: LateBuckets = field(default_factory=LateBuckets)
    #: Start of the newest point stored for the metric after the tick (None: not known yet):
    #: what ``cxmon_source_lag_seconds`` measures from.
    newest_point: datetime | None = None
    #: When the tick ended, by the pipeline's clock: what the exporter records as the last
    #: good tick (``cxmon_last_tick_timestamp_seconds``, ``/readyz``), so a replay or a test
    #: with a fake clock sees its own time, not the wall clock's. None for a skipped tick.
    finished_at: datetime | None = None
    #: Series forgotten by the tick (``forget_after``): state and checkpoints dropped.
    forgotten: int = 0
    #: Whether the tick (its last chunk) wrote the detector checkpoints
    #: (``store.checkpoint_every``: not every tick does).
    checkpointed: bool = False
    #: Buckets of stored points replayed through the detectors restored from checkpoints
    #: older than the cursor (first tick after a restart with ``store.checkpoint_every``).
    replayed: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class _Health:
    failures: int = 0
    retry_at: datetime | None = None


def _some(keys: Sequence[str], shown: int = 3) -> str:
    """``: a, b, c (+4 more)`` for a log line; empty for no keys."""
    if not keys:
        return ""
    more = f" (+{len(keys) - shown} more)" if len(keys) > shown else ""
    return ": " + ", ".join(keys[:shown]) + more


def measure_spec(metric: MetricConfig) -> MeasureSpec:
    """The part of a metric's config that shapes its frame."""
    return MeasureSpec(
        metric=metric.name,
        interval=metric.interval,
        kind=metric.value.kind,
        numerator=metric.value.numerator,
        denominator=metric.value.denominator,
        timestamp=metric.timestamp,
        dimensions=tuple(metric.dimensions),
        labels=dict(metric.labels),
        split_by=tuple(metric.split_by),
    )


def post_rules(metric: MetricConfig) -> PostRules:
    return PostRules(
        min_severity=metric.min_severity,
        direction=metric.direction,
        min_change=metric.min_change,
        min_abs_change=metric.min_abs_change,
        min_volume=metric.min_volume,
        consecutive=metric.consecutive,
        window_k=metric.window.k if metric.window else 1,
        window_n=metric.window.n if metric.window else 1,
        warmup=metric.warmup,
        suppress=metric.suppress,
        missing=metric.missing,
        no_data_after=no_data_intervals(metric),
    )


def no_data_intervals(metric: MetricConfig) -> int:
    """``no_data_after`` in intervals (0 = off), for the per-series rule; the default is the
    metric-level staleness rule's, so both rules go quiet after the same time."""
    if metric.no_data_after is None:
        return DEFAULT_NO_DATA_INTERVALS
    return -(-metric.no_data_after // metric.interval)


def build_notifiers(
    config: MonitorConfig, console: Console | None = None, store: Store | None = None
) -> dict[str, Notifier]:
    """One notifier per receiver that has a notifier configured (others drop alerts); with a
    store, Slack keeps its delivery receipts (thread, exactly-once) there."""
    grafana_url = config.grafana.url if config.grafana else None
    out: dict[str, Notifier] = {}
    for r in config.alerting.receivers:
        n = receiver_notifier(r, console=console, store=store, grafana_url=grafana_url)
        if n is not None:
            out[r.name] = n
    return out


class Pipeline:
    """Runs ticks for the configured metrics against one store. Clock and I/O are injected."""

    def __init__(
        self,
        config: MonitorConfig,
        store: Store,
        *,
        clock: Clock | None = None,
        notifiers: Mapping[str, Notifier] | None = None,
        sources: Mapping[str, Source] | None = None,
        console: Console | None = None,
        delivery: DeliveryPolicy | None = None,
        source_metrics: SourceMetrics | None = None,
        fit_executor: Executor | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.sources: dict[str, Source] = dict(sources or {})
        for name, cfg in config.sources.items():
            self.sources.setdefault(name, create_source(name, cfg))
        #: one fetch at a time per source (its caches and counters are not shared-safe); a
        #: prefetch (:meth:`prefetch`) and a tick of two metrics of one source take turns
        self._source_locks = {name: threading.Lock() for name in self.sources}
        #: one tick of a metric at a time: it owns the metric's detectors, cursor, checkpoint
        #: bookkeeping and health while it runs (:meth:`tick`)
        self._metric_locks = {m.name: threading.Lock() for m in config.metrics}
        #: what the ticks of all metrics share: the open incidents, the dispatcher's memory
        #: of firing ones, the alert groups, the cursors the resolve watermark reads. Held
        #: only for a tick's short commit step (incidents, routing, the one transaction),
        #: and by :meth:`flush_due`; detection runs outside it, so a metric with a heavy
        #: detection does not hold up the others' ticks. Taken after a metric lock, never
        #: before one.
        self._commit_lock = threading.Lock()
        #: metric -> a poll fetched before its tick (:meth:`prefetch`), taken by the tick
        self._prefetched: dict[str, _Prefetch] = {}
        self._ready: dict[str, _Prefetch] = {}
        if notifiers is None:
            notifiers = build_notifiers(config, console, store)
        self.notifiers = dict(notifiers)
        self.router = Router.from_config(config.alerting)
        # routes, silences, inhibition, time intervals, group_interval (alerts/dispatch.py)
        self.dispatcher = Dispatcher(config.alerting, router=self.router,
                                     silences=lambda now: active_silences(store, now),
                                     sources={m.name: m.source for m in config.metrics})
        # group_wait / group_interval / repeat_interval, durable (alerts/grouping.py)
        self.groups = AlertGroups(self.dispatcher, self.notifiers)
        self.outbox = OutboxWorker(store, self.notifiers, self.clock, delivery)
        self.runbooks = {m.name: m.runbook for m in config.metrics}
        #: metric titles, label and value display names: what people read in messages
        self.names = Names.from_config(config)
        #: ratio metrics: their values read as percentages in messages
        self.percent = config.ratio_metrics()
        max_interval = max(m.interval for m in config.metrics)
        self.incidents = IncidentTracker(
            incident_group_by(config.alerting.route.group_by, config.metrics),
            gap=max(config.alerting.resolve_after, 3 * max_interval),
            renotify=timedelta(0),  # every change is reported; group_interval paces them
            quiet_ticks=config.alerting.resolve_after_ticks,
            sources={m.name: m.source for m in config.metrics},
            severity_levels=_severity_levels(config),
        )
        self._detectors: dict[str, MetricDetectors] = {}
        self._calendar_said: dict[str, set[str]] = {}  # metric -> local dates logged
        self._health: dict[str, _Health] = {m.name: _Health() for m in config.metrics}
        #: source -> until when its server asked (Retry-After) that nobody polls it again
        self._source_hold: dict[str, datetime] = {}
        self._cursors: dict[str, datetime | None] = {}
        #: up to which bucket time each metric's detector checkpoints are in the store, and
        #: the series touched since (``store.checkpoint_every``: saved with the next one)
        self._checkpointed: dict[str, datetime | None] = {}
        self._unsaved: dict[str, dict[str, None]] = {}
        #: metric -> series keys whose checkpoints were unusable and not relearned: deleted
        #: with the next checkpoint, or every restart would find them unusable again
        self._stale_checkpoints: dict[str, set[str]] = {}
        #: series of each metric's latest poll: sizes a catch-up's chunks
        self._series_polled: dict[str, int] = {}
        #: when each metric last looked for series to forget (``forget_after``)
        self._forget = ForgetSchedule()
        # sources (issue 6): staleness rules, end of the newest bucket with rows, metrics
        self._staleness = {m.name: StalenessRule.for_metric(m) for m in config.metrics}
        self._last_data: dict[str, datetime | None] = {}
        #: metrics already warned about never having had a row (once per process)
        self._never_warned: set[str] = set()
        #: metrics already said to be warming up (once per process), and at what log level
        #: (the demo lowers it: it announces its warm-up week itself)
        self._warming_said: set[str] = set()
        self.warming_level = logging.WARNING
        self.source_metrics = source_metrics  # None: fed by dashboards.telemetry instead
        #: Where slow model fits (Prophet refits) run; None = inline. A thread pool or a Dask
        #: client's ``get_executor()`` takes them off the tick path.
        self.fit_executor = fit_executor
        for m in config.metrics if source_metrics is not None else ():
            source_metrics.declare(m.source, m.name)
        self._restore_incidents()

    # -- public -------------------------------------------------------------------------------

    def prefetch(self, metric_name: str) -> None:
        """Fetch the poll the metric's next tick will make, ahead of it and outside whatever
        serializes the ticks; the tick uses it if it polls the same range, else polls itself.

        Why: ticks ran one at a time then (they share the incident tracker), and a source
        that is slow or retrying (a timeout of 60 s, four attempts) held every other metric's
        tick for minutes. Now only their commit steps take turns (``_commit_lock``), so a
        poll inside a tick holds up no other metric either. Only a steady tick (one bucket
        since the cursor) is prefetched: a first tick or a catch-up polls in chunks, inside
        its tick. Never raises: a source error is kept and raised by the tick, which handles
        it as always."""
        metric = self.config.metric(metric_name)
        now = self.clock.now()
        health = self._health[metric.name]
        held = self._source_hold.get(metric.source)
        if (health.retry_at is not None and now < health.retry_at) or (
                held is not None and now < held):
            return
        try:
            cursor = self._cursors.get(metric.name) if metric.name in self._cursors \
                else self.store.get_cursor(metric.name)
        except Exception:  # the tick meets (and reports) the same trouble
            return
        until = floor_time(now - metric.delay, metric.interval)
        if cursor is None or until - cursor != metric.interval:
            return
        since = cursor
        if metric.late_window > timedelta(0):
            since = floor_time(cursor - metric.late_window, metric.interval)
        try:
            raw, dropped = self._fetch(metric, self._request(metric, since, until))
        except Exception as exc:
            self._prefetched[metric.name] = _Prefetch(since, until, None, Counter(), exc)
        else:
            self._prefetched[metric.name] = _Prefetch(since, until, raw, dropped, None)

    def tick(self, metric_name: str) -> TickResult:
        """Run one tick of a metric now. Never raises for data or source problems.

        Thread-safe: ticks of one metric take turns; ticks of different metrics run side by
        side but for their commit step (see ``_commit_lock``)."""
        metric = self.config.metric(metric_name)
        with self._metric_locks.setdefault(metric.name, threading.Lock()):
            pre = self._prefetched.pop(metric.name, None)
            if pre is not None:
                self._ready[metric.name] = pre
            try:
                return self._tick(metric)
            finally:
                self._ready.pop(metric.name, None)

    def _tick(self, metric: MetricConfig) -> TickResult:
        started = time.perf_counter()
        started_at = self.clock.now()
        result = TickResult(metric.name)
        health = self._health[metric.name]
        # a skipped tick is logged at DEBUG (counted as cxmon_ticks_total{outcome="skipped"}):
        # between two failures minutes apart, --log-level debug shows the scheduler ticking
        if health.retry_at is not None and started_at < health.retry_at:
            result.skipped = f"backing off until {health.retry_at.isoformat()}"
            log.debug("tick of %s skipped: backing off after %d failure(s), retried from "
                      "%s UTC", metric.name, health.failures,
                      f"{health.retry_at:%Y-%m-%d %H:%M:%S}")
            return result
        held = self._source_hold.get(metric.source)
        if held is not None and started_at < held:  # the server asked every client to wait
            result.skipped = (f"backing off until {held.isoformat()} (source {metric.source} "
                              "asked to wait: Retry-After)")
            log.debug("tick of %s skipped: source %s asked to wait (Retry-After), retried "
                      "from %s UTC", metric.name, metric.source, f"{held:%Y-%m-%d %H:%M:%S}")
            return result
        if metric.name not in self._cursors:
            self._cursors[metric.name] = self.store.get_cursor(metric.name)
        cursor = self._cursors[metric.name]
        until = floor_time(started_at - metric.delay, metric.interval)
        if cursor is not None:
            since = cursor
        else:  # first tick: the last bucket, or the whole configured history (learned silently)
            since = floor_time(until - max(metric.history, metric.interval), metric.interval)
        result.silent_before = until - metric.interval if cursor is None else None
        result.since, result.until = since, until
        if until <= since:
            result.skipped = "no complete bucket since the last tick"
            return result
        # The late-data window: re-poll the recent past too (upserted, not detected again).
        fetch_since = since
        if cursor is not None and metric.late_window > timedelta(0):
            fetch_since = floor_time(since - metric.late_window, metric.interval)
        try:
            if cursor is None:  # a long history is learned in chunks of bounded memory
                since, learned = self._learn_history(metric, since, until, result)
                self._run(metric, since, until, result, learned=learned)
            else:  # usually one bucket; after downtime, the gap in chunks
                lo = since
                while lo < until:
                    buckets = chunk_buckets(self._series_polled.get(metric.name),
                                            MAX_CATCHUP_BUCKETS)
                    hi = min(until, lo + buckets * metric.interval)
                    if lo == since and hi < until:
                        log.warning("%s: catching up %d buckets since %s, in chunks of at most "
                                    "%d (each alerted and committed before the next)",
                                    metric.name, (until - since) // metric.interval,
                                    since.isoformat(), MAX_CATCHUP_BUCKETS)
                    self._run(metric, lo, hi, result,
                              fetch_since=fetch_since if lo == since else lo)
                    lo = hi
        except (RetriableSourceError, FatalSourceError, FrameError, StoreError) as exc:
            # the store down or locked: one line (StoreError says which store and what to
            # check), not a traceback of the SQL at every tick of the outage
            self._failed(metric, result, exc, health, started_at)
        except Exception as exc:  # a bug must not kill the scheduler; it is logged and counted
            log.exception("tick of %s failed", metric.name)
            self._failed(metric, result, exc, health, started_at)
        else:
            health.failures, health.retry_at = 0, None
        result.seconds = time.perf_counter() - started
        last_end = self._last_data.get(metric.name)  # end of the newest bucket with rows
        result.newest_point = None if last_end is None else last_end - metric.interval
        if self.source_metrics is not None:  # thread-safe (a lock of its own)
            self.source_metrics.observe(metric.source, self.sources.get(metric.source), result,
                                        last_data_end=self._last_data.get(metric.name))
        result.finished_at = self.clock.now()
        return result

    def _settle_fits(self, dets: MetricDetectors) -> None:
        """With an executor that can settle (``cxmon run --once``: :class:`WaitingExecutor`),
        wait for the fits this tick handed out and install them, so they are in its
        checkpoint; otherwise a later tick installs them."""
        settle = getattr(self.fit_executor, "settle", None)
        if settle is not None:
            settle()
            dets.collect_fits()

    def pending_fits(self) -> list[Future]:
        """Futures of the slow model fits in flight (they are installed by a later tick)."""
        return [f for dets in list(self._detectors.values()) for f in dets.pending_fits()]

    def deliver(self, *, group_wait: bool = False) -> DeliveryReport:
        """Flush the alert groups that are due into the outbox, then send what is due
        (:meth:`flush_due`, then :meth:`send_due`, in the caller's thread: simulated time
        and ``cxmon run --once``). ``group_wait=True``: new incidents' first messages too."""
        flushed = self.flush_due(group_wait=group_wait)
        assert flushed is not None  # waited for the lock
        report = self.send_due()
        report.enqueued = flushed.by_receiver
        return report

    def flush_groups(self, *, group_wait: bool = False) -> int:
        """Alert groups due now (group_wait, group_interval, repeat_interval) into the outbox;
        returns how many notifications were enqueued. ``group_wait=True`` also flushes the
        groups still waiting for their first message (see :meth:`AlertGroups.flush`)."""
        flushed = self.flush_due(group_wait=group_wait)
        assert flushed is not None  # waited for the lock
        return flushed.enqueued

    def flush_due(self, *, group_wait: bool = False, wait: bool = True) -> FlushResult | None:
        """The first half of a delivery: due alert groups into outbox rows, in one short
        transaction. It shares with :meth:`tick` the open incidents, the dispatcher's memory of
        firing ones and the ``alert_groups`` rows (a tick applies its changes to them and
        flushes in its own transaction), so it takes the commit lock: it waits for a tick's
        commit step, never for a tick's poll or detection. ``wait=False``: None at once if a
        commit step is running (it flushes every due group itself as it commits)."""
        if not self._commit_lock.acquire(blocking=wait):
            return None
        try:
            with self.store.transaction() as tx:
                return self.groups.flush(tx, self.clock.now(), self.incidents.active(),
                                         group_wait=group_wait)
        finally:
            self._commit_lock.release()

    def send_due(self) -> DeliveryReport:
        """The second half: send what is due in the outbox (the slow, network part). It
        touches only outbox rows (claimed with a lease) and the notifiers, nothing a tick
        uses, so it runs beside ticks; the outbox rows are the only hand-off. One pass at a
        time per pipeline (the :class:`OutboxWorker` is one lease owner; the scheduler
        serializes its passes)."""
        return self.outbox.deliver_due()

    def next_flush_at(self) -> datetime | None:
        """When the next alert group is due (for simulated time), or None."""
        return next_flush_at(self.store)

    def close(self) -> None:
        for source in self.sources.values():
            source.close()

    def _usual_volume(self, metric: MetricConfig, silent_before: datetime | None
                      ) -> Callable[[pd.Timestamp, Sequence[str]], dict[str, float]] | None:
        """Each leaf's usual denominator at a time: its median at the same time of week over
        the previous ``USUAL_WEEKS`` weeks (weekends have their own mix), else at the same
        time on the previous ``USUAL_DAYS`` days, whichever first has ``USUAL_MIN_DAYS`` with
        data (stored points; a missing leaf counts as 0). Only ratios and means have a volume
        mix; read only when an anomaly needs it."""
        if metric.value.kind is ValueKind.SUM or not metric.dimensions:
            return None

        def usual(ts: pd.Timestamp, keys: Sequence[str]) -> dict[str, float]:
            at = ts.to_pydatetime()
            if silent_before is not None and at < silent_before:
                return {}  # history learned on a first tick: no alert will say it
            for step, count in ((timedelta(weeks=1), USUAL_WEEKS), (timedelta(days=1),
                                                                     USUAL_DAYS)):
                seen = []
                for k in range(1, count + 1):
                    start = at - k * step
                    pts = self.store.load_points(metric=metric.name, keys=list(keys),
                                                 start=start, end=start + metric.interval)
                    if len(pts):
                        seen.append(pts.groupby("series")["denominator"].sum())
                if len(seen) >= USUAL_MIN_DAYS:
                    table = pd.concat(seen, axis=1).fillna(0.0)
                    return {str(k): float(v) for k, v in table.median(axis=1).items()}
            return {}

        return usual

    # -- internals ----------------------------------------------------------------------------

    def _run(
        self,
        metric: MetricConfig,
        since: datetime,
        until: datetime,
        result: TickResult,
        *,
        fetch_since: datetime | None = None,
        learned: list[str] | None = None,
    ) -> None:
        """Poll, detect, attribute, alert and commit ``[since, until)``; ``learned``: series
        met in earlier history chunks of this tick, checkpointed with the ones polled here."""
        fetch_since = since if fetch_since is None else fetch_since
        # each catch-up chunk is recorded as a tick of its own; a first tick as one, history
        first = result.silent_before is not None
        before = (0, 0, 0) if first else (result.rows_in, result.rows_stored,
                                           len(result.anomalies))
        built = self._poll(metric, fetch_since, until, result)
        dets = self._metric_detectors(metric, list(built.series), result)
        fresh = built.frame  # re-polled (late-window) buckets are stored, never re-detected
        if fetch_since < since:
            fresh = fresh[fresh["timestamp"] >= pd.Timestamp(since)]
            self._check_late(metric, built.frame[built.frame["timestamp"] < pd.Timestamp(since)],
                             fetch_since, since, until, result)
        dets.feedback.extend(verdicts(self.store.feedback_after(metric.name,
                                                                dets.feedback.last_id)))
        no_data = self._no_data(metric, until, built.frame)
        if self._last_data.get(metric.name) is None and metric.name not in self._never_warned:
            # never any row: the staleness rule has no "last data" to count from, so say it
            self._never_warned.add(metric.name)
            log.warning("%s: no rows from source %s for %s..%s, and none stored before: "
                        "check the source, the query and the timestamp column %r",
                        metric.name, metric.source, fetch_since.isoformat(),
                        until.isoformat(), metric.timestamp)
        if result.silent_before is None:
            self._say_returned(metric, dets, list(built.series), fetch_since)
        detected = dets.run(fresh, built.series, keep_scores=True, until=until,
                            metric_silent=bool(no_data))
        forgotten = self._stale_series(metric, dets, until)
        self._settle_fits(dets)
        self._say_warming(metric, dets, until)
        self._say_calendar(metric, detected.calendar_days, dets.calendar_learners())
        for name, report in dets.fit_reports().items():
            if report.seconds:
                result.refits[name] = report.seconds
            if report.failures:
                result.refit_failures[name] = report.failures
        result.fits_in_flight.update(dets.fits_in_flight())
        detected.anomalies += no_data
        result.anomalies += detected.anomalies
        if detected.scores is not None and len(detected.scores):
            result.scores = detected.scores.drop_duplicates("series", keep="last")
        rca = attribute(fresh, detected.scores, built.series, detected.anomalies,  # root cause
                        kind=metric.value.kind, dimensions=metric.dimensions,
                        split_by=metric.split_by, gone=detected.gone,
                        usual_volume=self._usual_volume(metric, result.silent_before))
        alerting = detected.anomalies
        if result.silent_before is not None:  # history learned on a first tick: no alerts
            alerting = [a for a in alerting if a.timestamp >= result.silent_before]
            rca = [r for r in rca if r.timestamp >= result.silent_before]
        # What is this metric's alone is made ready before the commit step (the detector
        # states serialized: the slow part of a checkpoint) ...
        gone = set(forgotten or ())
        unsaved = self._unsaved.setdefault(metric.name, {})
        unsaved.update(dict.fromkeys([*(learned or ()), *built.series]))
        save = self._checkpoint_due(metric, until, first=first, forgot=bool(forgotten))
        keys = [k for k in unsaved if k not in gone] if save else []
        states = dets.checkpoints(keys) if save else {}
        stale = self._stale_checkpoints.pop(metric.name, None) if save else None
        # ... and what all metrics share is changed and committed under the commit lock: the
        # open incidents, the alert groups, the cursors the watermark reads. A failure in it
        # puts the incidents back as they were before this step (another metric's commit
        # that came meanwhile is kept).
        with self._commit_lock:
            snapshot = self.incidents.snapshot()
            try:
                now = self.clock.now()
                with self.store.transaction() as tx:
                    self._learn_dismissals(tx)  # first: closed as false alarms meanwhile
                    changes = self.incidents.observe(alerting, until, rca)
                    # Quiet means quiet in every metric: resolve only up to where all have
                    # been polled.
                    changes += self.incidents.resolve_quiet(self._watermark(metric.name,
                                                                            until))
                    payloads = self._payloads(changes)
                    tx.ensure_series([*built.series.values(),
                                      *self._no_data_series(metric, no_data)])
                    result.rows_stored += tx.upsert_points(built.frame)
                    for name, rows in states.items():
                        tx.save_checkpoints(name, rows)
                    if stale:  # a relearn's series whose old, unusable state was not replaced
                        tx.delete_checkpoints(dets.checkpoint_names(), sorted(stale - set(keys)))
                    deleted = tx.delete_checkpoints(dets.checkpoint_names(), forgotten or [])
                    tx.add_anomalies(detected.anomalies)
                    for change in changes:
                        self._persist_incident(tx, change)
                    flushed = self._route(tx, changes, payloads, now)
                    result.notifications += flushed.enqueued
                    result.enqueued.update(flushed.by_receiver)
                    tx.set_cursor(metric.name, until)
                    if save:
                        tx.mark_checkpointed(metric.name, until)
                    tx.record_tick(
                        metric=metric.name, started_at=now, finished_at=self.clock.now(),
                        since=(result.since or since) if first else since, until=until,
                        rows_in=result.rows_in - before[0],
                        rows_stored=result.rows_stored - before[1],
                        rejected=result.rejected, anomalies=len(result.anomalies) - before[2],
                    )
            except BaseException:
                self.incidents.restore(snapshot)
                raise
            self._cursors[metric.name] = until
        if save:
            self._checkpointed[metric.name] = until
            unsaved.clear()
        result.checkpointed = save
        self._series_polled[metric.name] = len(built.series)
        result.incidents += changes
        if forgotten is not None:
            self._forgot(metric, forgotten, deleted, until, result)

    def _checkpoint_due(self, metric: MetricConfig, until: datetime, *, first: bool,
                        forgot: bool) -> bool:
        """Whether this tick writes the metric's detector checkpoints: every tick without
        ``store.checkpoint_every``; else a first tick, a tick that forgot series (their
        deleted checkpoints must not come back through a replay of their older points), and
        a tick at least ``checkpoint_every`` of bucket time after the last checkpoint."""
        every = self.config.store.checkpoint_every
        if every is None or first or forgot:
            return True
        if metric.name not in self._checkpointed:
            self._checkpointed[metric.name] = self.store.checkpointed(metric.name)
        last = self._checkpointed[metric.name]
        return last is None or until - last >= every

    def _stale_series(self, metric: MetricConfig, dets: MetricDetectors, until: datetime
                      ) -> list[str] | None:
        """Forget (in memory) the series without a point for ``forget_after`` before
        ``until``; the tick's transaction deletes their checkpoints. None: not due this tick
        (at most one look an hour of bucket time) or forgetting is off. A tick that fails
        after this reloads the detectors from the store, so nothing is half-forgotten."""
        after = forget_after(metric)
        if after is None or not self._forget.due(metric.name, until):
            return None
        stale = dets.stale(until - after)
        dets.forget(stale)
        return stale

    def _forgot(self, metric: MetricConfig, forgotten: list[str], deleted: int,
                until: datetime, result: TickResult) -> None:
        """After the commit: the look is done; say what was forgotten."""
        self._forget.done(metric.name, until)
        self.store.forget_series_ids(forgotten)
        result.forgotten += len(forgotten)
        after = forget_after(metric)
        assert after is not None
        level = logging.INFO if forgotten else logging.DEBUG
        log.log(level, "%s: forgot %d series without data for %s (as of %s; %d checkpoint "
                "rows deleted)%s", metric.name, len(forgotten), format_duration(after),
                until.isoformat(), deleted, _some(forgotten))

    def _say_returned(self, metric: MetricConfig, dets: MetricDetectors, keys: list[str],
                      before: datetime) -> None:
        """Log once the series that come back after they were forgotten (new to the
        detectors, yet with points stored long before): they are learned afresh, so no
        alerts until warmed up again, which would otherwise look like a silent detector."""
        if forget_after(metric) is None:
            return
        new = [k for k in keys if not dets.knows(k)]
        if not new:
            return
        back = self.store.series_with_points_before(new, before)
        if back:
            log.info("%s: %d series came back after they were forgotten (no data for "
                     "forget_after): learning them afresh%s", metric.name, len(back),
                     _some(sorted(back)))

    def _check_late(self, metric: MetricConfig, repolled: pd.DataFrame, fetch_since: datetime,
                    since: datetime, until: datetime, result: TickResult) -> None:
        """Count re-polled buckets that are new or corrected (``result.late``), and warn about
        new ones: rows that arrived after their bucket was scored are never alerted on."""
        stored = self.store.load_points(metric=metric.name, start=fetch_since, end=since)
        late = result.late = late_buckets(stored, repolled)
        if late.corrected:
            log.info("%s: %d already-scored buckets corrected by late rows (stored, not "
                     "scored again)", metric.name, late.corrected)
        if late.new and late.oldest_new is not None:
            lag = until + metric.delay - (late.oldest_new + metric.interval)
            log.warning("%s: %d buckets (series x interval) got their first rows after they "
                        "were scored, up to %s late (oldest %s): stored, never alerted on; set "
                        "delay: %s or more to score data this late", metric.name, late.new,
                        format_duration(lag), late.oldest_new.isoformat(), format_duration(lag))

    def _say_calendar(self, metric: MetricConfig, days: Mapping[str, CalendarDay],
                      learners: Sequence[str] = ()) -> None:
        """Log each calendar day once per metric: why a day's points were not scored or
        learned is otherwise invisible (``learners``: detectors that model holidays
        themselves and learn the day all the same)."""
        said = self._calendar_said.setdefault(metric.name, set())
        for local, day in sorted(days.items()):
            if local in said:
                continue
            said.add(local)
            what = ("not scored, not learned" if day.mode == "skip"
                    else "scored and alerted as usual, not learned")
            if learners:
                what += f" (learned all the same by {', '.join(learners)})"
            log.info("%s: %s is %s (calendar: %s): its points are %s", metric.name, local,
                     day.name, day.mode, what)

    def _say_warming(self, metric: MetricConfig, dets: MetricDetectors,
                     until: datetime) -> None:
        """Once per process and metric: its newest bucket could not be scored because a
        detector is still learning. Values and bands show on dashboards meanwhile, so without
        this a metric that cannot alert yet looks like one that finds nothing."""
        if metric.name in self._warming_said:
            return
        warming = dets.warming(until - metric.interval, metric.interval)
        if warming is not None:
            self._warming_said.add(metric.name)
            log.log(self.warming_level, "%s: detectors still warming up (%s): no alerts from "
                    "them until they have learned that much; a `history:` at least that long "
                    "on the metric learns it from the past on the first tick", metric.name,
                    warming[1])

    def _poll(self, metric: MetricConfig, since: datetime, until: datetime,
              result: TickResult) -> MeasureFrame:
        """Fetch ``[since, until)`` and build the measure frame; rows in and rejected rows
        (the frame's and the source's own drops) are added to ``result``."""
        pre = self._ready.pop(metric.name, None)
        if pre is not None and (pre.since, pre.until) == (since, until):
            if pre.error is not None:
                raise pre.error
            raw, dropped = pre.raw, pre.dropped
        else:
            raw, dropped = self._fetch(metric, self._request(metric, since, until))
        built = build_measure_frame(raw, measure_spec(metric), since, until)
        result.rows_in += built.rows_in
        result.rejected = dict(Counter(result.rejected) + built.rejected + dropped)
        bad = {k: n for k, n in built.rejected.items() if k != "zero_denominator"}
        if bad:
            # per poll (a first tick's history is polled in chunks): the range says which
            log.warning("%s: rejected %d of the %d rows polled for %s to %s %s", metric.name,
                        sum(bad.values()), built.rows_in, since.isoformat(),
                        until.isoformat(), bad)  # the source logs its own
        if empty := built.rejected.get("zero_denominator"):
            # no sessions in a night hour is no traffic, not a bad row: counted (the
            # rejected-rows metric, cxmon status) but no warning each poll
            log.info("%s: %d series-buckets with a zero denominator polled for %s to %s "
                     "(no rate there: not scored)", metric.name, empty, since.isoformat(),
                     until.isoformat())
        return built

    @staticmethod
    def _request(metric: MetricConfig, since: datetime, until: datetime) -> PollRequest:
        return PollRequest(metric=metric.name, since=since, until=until, query=metric.query,
                           params=dict(metric.params), timestamp_column=metric.timestamp,
                           interval=metric.interval,
                           dimensions=(*metric.split_by, *metric.dimensions))

    def _fetch(self, metric: MetricConfig, request: PollRequest) -> tuple[Any, Counter[str]]:
        """The source's rows and the rows it dropped itself (a files source: malformed
        lines, unreadable times), one fetch of a source at a time."""
        source = self.sources[metric.source]
        with self._source_locks.setdefault(metric.source, threading.Lock()):
            dropped_before = Counter(getattr(source, "skipped", None) or {})
            raw = source.fetch(request)
            dropped = Counter(getattr(source, "skipped", None) or {}) - dropped_before
        return raw, dropped

    def _learn_history(self, metric: MetricConfig, since: datetime, until: datetime,
                       result: TickResult) -> tuple[datetime, list[str]]:
        """A first tick's history but its newest chunk, learned chunk by chunk so memory is
        bounded by ``HISTORY_CHUNK_POINTS``, not by history x series; returns where the
        newest chunk (run by :meth:`_run`) starts, and the series met before it.

        Each chunk stores its points, series and anomalies (idempotent writes); the cursor and
        the detectors' checkpoints are only written with the newest chunk, so a failure part
        way leaves nothing half-learned: the next tick learns the history again from scratch.
        History is never alerted on (``result.silent_before``).
        """
        buckets = HISTORY_FIRST_CHUNK
        seen: dict[str, None] = {}
        while (until - since) // metric.interval > buckets:
            hi = since + buckets * metric.interval
            built = self._poll(metric, since, hi, result)
            dets = self._metric_detectors(metric, list(built.series))
            detected = dets.run(built.frame, built.series, keep_scores=False, until=hi)
            self._no_data(metric, hi, built.frame)  # the newest bucket with rows, for later
            with self.store.transaction() as tx:
                tx.ensure_series(list(built.series.values()))
                result.rows_stored += tx.upsert_points(built.frame)
                tx.add_anomalies(detected.anomalies)
            result.anomalies += detected.anomalies
            seen.update(dict.fromkeys(built.series))
            since = hi
            buckets = chunk_buckets(len(built.series))
        return since, list(seen)

    def _watermark(self, current: str, until: datetime) -> datetime:
        """The time up to which every metric has been processed (this tick included)."""
        marks = [until]
        for m in self.config.active_metrics:  # a paused metric's old cursor holds nothing back
            if m.name == current:
                continue
            if m.name not in self._cursors:
                self._cursors[m.name] = self.store.get_cursor(m.name)
            cursor = self._cursors[m.name]
            if cursor is not None:  # a metric never polled yet does not hold others back
                marks.append(cursor)
        return min(marks)

    def _failed(
        self,
        metric: MetricConfig,
        result: TickResult,
        exc: BaseException,
        health: _Health,
        now: datetime,
    ) -> None:
        """Undo in-memory effects, back off, and record the failure (never the secrets). The
        open incidents need no undoing: a commit step that fails restores them itself."""
        self._detectors.pop(metric.name, None)  # reload the committed state next time
        self._cursors.pop(metric.name, None)
        self._checkpointed.pop(metric.name, None)  # ... and replay from its checkpoint
        self._unsaved.pop(metric.name, None)
        self._last_data.pop(metric.name, None)
        result.error = str(exc) or type(exc).__name__
        result.anomalies = []
        health.failures += 1
        backoff = min(metric.interval * 2 ** (health.failures - 1), MAX_BACKOFF)
        # a tenth of an interval early: scheduled ticks start a few ms apart, and one that
        # started just before an exact retry_at was skipped (4 min of backoff became 5)
        health.retry_at = now + backoff - metric.interval / 10 if health.failures > 1 else None
        asked = getattr(exc, "retry_after", None)
        if asked:  # the server's Retry-After: polling sooner only prolongs a rate limit, and
            # a rate limit is the account's: every metric of the source waits
            health.retry_at = max(health.retry_at or now, now + timedelta(seconds=asked))
            held = self._source_hold.get(metric.source)
            self._source_hold[metric.source] = max(held or now, now + timedelta(seconds=asked))
        level = logging.ERROR if isinstance(exc, FatalSourceError | FrameError) else logging.WARNING
        # the source only knows that its own retries are used up; the tick retries later
        # (a backfill or backtest does not, so the source does not say so). A fatal error
        # (a rejected password, a missing table) is retried with the same backoff, since it
        # may be fixed outside cxmon: said too, or the log went quiet for minutes between
        # failures and read as if the monitor had given the metric up
        later = (f" (backing off: retried from {health.retry_at:%Y-%m-%d %H:%M:%S} UTC)"
                 if health.retry_at is not None else " (retried on the next tick)")
        log.log(level, "tick of %s failed (%d in a row): %s%s", metric.name, health.failures,
                result.error, later)
        with self._commit_lock:
            snapshot = self.incidents.snapshot()
            try:
                with self.store.transaction() as tx:
                    # no data while the source is down (issue 6); not on a first tick, which may
                    # have stored part of its history: that is no "last data" to time an outage by
                    if result.until is not None and result.silent_before is None:
                        no_data = self._no_data(metric, result.until, None)
                        self._learn_dismissals(tx)
                        changes = self.incidents.observe(no_data, result.until)
                        tx.ensure_series(self._no_data_series(metric, no_data))
                        tx.add_anomalies(no_data)
                        for change in changes:
                            self._persist_incident(tx, change)
                        flushed = self._route(tx, changes, self._payloads(changes), now)
                        result.notifications += flushed.enqueued
                        result.enqueued.update(flushed.by_receiver)
                        result.anomalies, result.incidents = no_data, changes
                    tx.record_tick(
                        metric=metric.name, started_at=now, finished_at=self.clock.now(),
                        since=result.since, until=result.until, rows_in=result.rows_in,
                        rows_stored=result.rows_stored, rejected=result.rejected, anomalies=0,
                        error=result.error,
                    )
            except StoreError as exc:  # the store is what failed: it is said above, once
                self.incidents.restore(snapshot)
                result.anomalies, result.incidents = [], []
                log.debug("could not record the failed tick of %s: %s", metric.name, exc)
            except Exception:
                self.incidents.restore(snapshot)
                result.anomalies, result.incidents = [], []
                log.exception("could not record the failed tick of %s", metric.name)

    def _no_data(
        self, metric: MetricConfig, until: datetime, frame: pd.DataFrame | None
    ) -> list[Anomaly]:
        """Track the newest bucket with rows; a ``no_data`` anomaly if the metric is stale."""
        if metric.name not in self._last_data:
            last = self.store.last_point_time(metric.name)
            self._last_data[metric.name] = None if last is None else last + metric.interval
        if frame is not None and len(frame):
            end = frame["timestamp"].max().to_pydatetime() + metric.interval
            prev = self._last_data[metric.name]
            self._last_data[metric.name] = end if prev is None else max(prev, end)
        rule = self._staleness[metric.name]
        last_end = self._last_data[metric.name]
        if last_end is None or not rule.is_stale(last_end, until):
            return []
        calendar = self.config.calendar_for(metric)
        if calendar is not None and calendar.of(metric.labels).skips(until - metric.interval / 2):
            return []  # a closed day: reported after it if the data has not come back
        return [rule.anomaly(last_end, until)]

    def _no_data_series(self, metric: MetricConfig, anomalies: list[Anomaly]) -> list[Series]:
        return [self._staleness[metric.name].series] if anomalies else []

    def _metric_detectors(self, metric: MetricConfig, keys: list[str],
                          result: TickResult | None = None) -> MetricDetectors:
        """The metric's detectors, restored from their checkpoints on first use, then brought
        up to the cursor by replaying the points stored since (``store.checkpoint_every``)."""
        dets = self._detectors.get(metric.name)
        if dets is None:
            dets = self._new_detectors(metric)
            start = None
            if unusable := dets.restore(self.store.load_checkpoints):
                dets, start = self._relearn(metric, unusable)
            replayed = self._replay(metric, dets, start)
            if result is not None:
                result.replayed = replayed
            self._detectors[metric.name] = dets
        return dets

    def _new_detectors(self, metric: MetricConfig) -> MetricDetectors:
        dets = MetricDetectors(metric.name, metric.interval, self.config.detectors_for(metric),
                               post_rules(metric),
                               calendar=self.config.calendar_for(metric),
                               zone=metric.timezone or "UTC")
        if self.fit_executor is not None:
            dets.set_executor(self.fit_executor)
        return dets

    def _relearn(self, metric: MetricConfig, unusable: list[str]
                 ) -> tuple[MetricDetectors, datetime | None]:
        """Fresh detectors for a metric with a checkpoint they cannot use (its detector's
        settings changed, or an older cxmon wrote it), and where to relearn from: the
        stored points of the last ``history`` or the longest warm-up, whichever is longer.

        Why: learning afresh from the next tick meant no alerts for a week (robust_seasonal's
        warm-up) after an upgrade or a changed ``z_band``, although the store held the very
        points the detectors needed. Every detector of the metric relearns, so they agree."""
        dets = self._new_detectors(metric)
        cursor = self._cursors.get(metric.name)
        window = max([metric.history, *dets.warmup_periods().values()])
        start = cursor - window if cursor is not None and window > timedelta(0) else None
        self._stale_checkpoints[metric.name] = {
            k for name in unusable for k in self.store.load_checkpoints(name)}
        since = f"the points stored since {start.isoformat()}" if start else "the next points"
        log.warning("%s: checkpoint not usable (%s: detector settings changed, or written by "
                    "an older cxmon); relearning from %s", metric.name, ", ".join(unusable),
                    since)
        return dets, start

    def _replay(self, metric: MetricConfig, dets: MetricDetectors,
                relearn: datetime | None = None) -> int:
        """Run the points stored between the checkpoints (or ``relearn``: fresh detectors)
        and the cursor through the detectors (score, post-rules, learn), one bucket at a time
        as the ticks ran them, loaded in chunks of about ``HISTORY_CHUNK_POINTS``; returns the
        buckets replayed. Their anomalies, incidents and notifications were committed by the
        ticks that ran: nothing is stored or alerted again. The keys met are checkpointed
        with the next checkpoint."""
        cursor = self._cursors.get(metric.name)
        start = relearn or self.store.checkpointed(metric.name)
        # after a relearn the next tick writes every checkpoint
        self._checkpointed[metric.name] = None if relearn else start
        if cursor is None or start is None or start >= cursor:
            return 0
        # feedback the ticks had (given later: see docs/operations.md, "Checkpoints")
        dets.feedback.extend(verdicts(self.store.feedback_after(metric.name,
                                                                dets.feedback.last_id)))
        unsaved = self._unsaved.setdefault(metric.name, {})
        series = {k: Series(metric.name, labels, tuple(d for d in metric.dimensions
                                                       if d in labels))
                  for k, labels in self.store.series_labels(metric.name).items()}
        step = chunk_buckets(len(series) or None, MAX_CATCHUP_BUCKETS) * metric.interval
        lo = start
        while lo < cursor:
            hi = min(cursor, lo + step)
            frame = self.store.load_points(metric=metric.name, start=lo, end=hi)
            for ts, bucket in frame.groupby("timestamp", sort=True):
                keys = bucket["series"].unique()
                polled = {k: series[k] for k in keys if k in series}
                dets.run(bucket.reset_index(drop=True), polled, keep_scores=False,
                         until=ts.to_pydatetime() + metric.interval)
                unsaved.update(dict.fromkeys(polled))
            lo = hi
        buckets = (cursor - start) // metric.interval
        log.info("%s: replayed %d buckets of stored points (%s to %s) through the detectors "
                 "%s", metric.name, buckets, start.isoformat(), cursor.isoformat(),
                 "relearning" if relearn else "restored from their checkpoints")
        return buckets

    def _payloads(self, changes: list[IncidentChange]) -> dict[int, dict[str, Any]]:
        """The notification payload of each change worth telling, by ``id(change)``."""
        return {id(c): incident_payload(c, runbooks=self.runbooks, percent=self.percent,
                                        names=self.names)
                for c in changes if c.notify}

    def _route(self, tx: StoreTx, changes: list[IncidentChange],
               payloads: dict[int, dict[str, Any]], now: datetime) -> FlushResult:
        """Changes into the alert groups, then due groups into the outbox (same transaction,
        so a group with ``group_wait: 0s`` goes out with its tick)."""
        self.groups.apply(tx, changes, payloads, now)
        return self.groups.flush(tx, now, self.incidents.active())

    def _learn_dismissals(self, tx: StoreTx) -> None:
        """Mark the open incidents that were dismissed as false alarms (closed in the store,
        by the feedback endpoint or ``cxmon feedback``, :mod:`alerts.dismiss`) since the last
        commit: they take their group's anomalies quietly from now on. In the commit's
        transaction, their rows locked (PostgreSQL): a dismissal waits for this commit, or
        this commit for it; neither writes over the other."""
        from alerts.dismiss import dismissals

        held = [inc.key for inc in self.incidents.active()]
        if not held:
            return
        for key, dismissal in dismissals(tx, held).items():
            self.incidents.dismiss(key, dismissal)
            self.groups.dispatcher.forget(key)
            log.info("incident %s was dismissed by %s: closed; its group's anomalies join it "
                     "quietly until resolve_after passes, unless they are worse", key,
                     dismissal.get("by"))

    def _persist_incident(self, tx: StoreTx, change: IncidentChange) -> None:
        inc = change.incident
        if inc.dismissed is not None:  # closed when dismissed: it stays closed
            if change.status != "resolved":
                iid = tx.absorb_into_closed(inc.key, severity=inc.severity, at=change.at,
                                            summary=self._incident_summary(change))
                if iid is not None:
                    tx.link_anomalies(iid, [a.id for a in change.anomalies])
            return
        if change.status == "resolved":
            tx.resolve_incident(inc.key, change.at)
            return
        summary = self._incident_summary(change)
        iid = tx.open_incident(
            inc.key, journey=inc.group.get("journey"), severity=inc.severity,
            at=inc.opened_at if change.status == "opened" else change.at, summary=summary,
        )
        tx.link_anomalies(iid, [a.id for a in change.anomalies])

    @staticmethod
    def _incident_summary(change: IncidentChange) -> dict[str, Any]:
        inc = change.incident
        return {
            "group": inc.group,
            "series": sorted(inc.series),
            "last_anomaly_at": inc.last_anomaly_at.isoformat(),
            "last_notified_at": inc.last_notified_at.isoformat() if inc.last_notified_at else None,
            "notified_severity": inc.notified_severity,
            "top": [anomaly_dict(a) for a in change.anomalies[:5]],
            **incident_summary(inc),  # measures in order, root causes, contributors
            **({"dismissed": dict(inc.dismissed)} if inc.dismissed is not None else {}),
        }

    def _restore_incidents(self) -> None:
        """Rebuild the open incidents from the store after a restart, and the ones closed as
        false alarms whose alert groups are still kept (:mod:`alerts.dismiss`): without them
        their group's next anomaly, of the very values called a false alarm, paged again."""
        opened = self.store.open_incidents()
        groups = {group_key(dict((r["summary"] or {}).get("group") or {})) for r in opened}
        closed = [r for r in self.store.dismissed_incidents()
                  if group_key(dict((r["summary"] or {}).get("group") or {})) not in groups]
        for row in [*closed, *opened]:
            s = row["summary"] or {}
            group = dict(s.get("group") or {})
            last = s.get("last_anomaly_at")
            notified = s.get("last_notified_at")
            inc = OpenIncident(
                key=row["key"],
                group=group,
                opened_at=row["opened_at"],
                last_anomaly_at=datetime.fromisoformat(last) if last else row["updated_at"],
                severity=int(row["severity"]),
                series=set(s.get("series") or []),
                last_notified_at=datetime.fromisoformat(notified) if notified else None,
                notified_severity=int(s.get("notified_severity") or 0),
            )
            restore_summary(inc, s)
            if isinstance(s.get("dismissed"), dict) and row["status"] == "resolved":
                inc.dismissed = dict(s["dismissed"])
            self.incidents.open[group_key(group)] = inc


def _severity_levels(config: MonitorConfig) -> set[int]:
    """The severities whose crossing an incident's update must tell: cxmon's levels and each
    PagerDuty receiver's (``severity: {critical, error, warning}``), where its alert's
    severity, and so its urgency, changes."""
    levels = {low for low, _name in SEVERITY_LEVELS if low > 0}
    for receiver in config.alerting.receivers:
        if receiver.pagerduty is not None:
            pd = receiver.pagerduty.severity
            levels |= {v for v in (pd.critical, pd.error, pd.warning) if 0 < v <= 100}
    return levels
