"""Run the pipeline on a schedule.

Real time: APScheduler 3 runs one job per metric at its interval (aligned to bucket
boundaries plus the metric's delay, with jitter; coalesced, one instance at a time) and a
retention job (at start, then every 6 h); a delivery thread of its own flushes due alert groups
and sends the outbox every 5 s and after each tick, beside the ticks (see :class:`Scheduler`).
SIGINT/SIGTERM let the running ticks finish and deliver once more, waiting for delivery at
most ``scheduler.delivery_stop_timeout`` (a hung webhook leaves its rows in the outbox).

Simulated time (:func:`replay`): the same ticks driven by a :class:`~monitor.clock.FakeClock`,
step by step. ``cxmon demo`` replays weeks of history this way, and tests use it instead of
sleeping.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from alerts.outbox import DeliveryReport
from monitor.clock import FakeClock
from monitor.durations import format_duration
from monitor.frames import floor_time
from monitor.pipeline import Pipeline, TickResult

log = logging.getLogger(__name__)

DELIVERY_EVERY = timedelta(seconds=5)
RETENTION_EVERY = timedelta(hours=6)


class AlignedIntervalTrigger(IntervalTrigger):
    """Fires at ``start_date + k * interval`` (plus jitter), found from the clock.

    Why: APScheduler's own trigger adds the interval to the previous fire time, so the
    catch-up run at start-up moved every later tick off the bucket boundary (up to an
    interval late) and each tick's jitter was added on top of the last one's (drift).
    """

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        if previous_fire_time is not None:  # strictly after the run just done
            now = max(now, previous_fire_time + timedelta(microseconds=1))
        return super().get_next_fire_time(None, now)


def first_poll(now: datetime, interval: timedelta, delay: timedelta) -> datetime:
    """The first scheduled poll after a start at ``now``: the next bucket end plus ``delay``
    strictly after ``now``. Counted from ``floor(now)`` it skipped the bucket that ended
    before ``now`` but was not yet due (a start within ``delay`` of a bucket end): the
    start-up catch-up found it not due, and it was polled an interval late (an hour for an
    hourly metric)."""
    return floor_time(now - delay, interval) + interval + delay


def aligned_trigger(interval: timedelta, start: datetime, *,
                    jitter: timedelta) -> AlignedIntervalTrigger:
    """A metric's poll schedule: every ``interval`` from ``start`` (a bucket end plus the
    metric's delay), each fire up to ``jitter`` late."""
    seconds = int(jitter.total_seconds())
    return AlignedIntervalTrigger(seconds=interval.total_seconds(), start_date=start,
                                  jitter=seconds or None, timezone="UTC")


def run_retention(pipeline: Pipeline) -> dict[str, int]:
    """Delete what is older than the store's retention setting in every table that grows
    with time (points, anomalies, ticks, finished notifications, receipts; what feedback or
    an open incident still needs is kept); rows deleted per table."""
    cutoff = pipeline.clock.now() - pipeline.config.store.retention
    deleted = pipeline.store.purge_history(cutoff)
    if any(deleted.values()):
        log.info("retention: deleted %s older than %s",
                 ", ".join(f"{n} {table}" for table, n in deleted.items() if n),
                 cutoff.isoformat())
    _purge_feedback_requests(pipeline)
    return deleted


def _purge_feedback_requests(pipeline: Pipeline) -> int:
    """Forget feedback request signatures past the replay window: the feedback endpoint
    purges as requests arrive, this also empties the table when none come any more."""
    fb = pipeline.config.alerting.feedback
    window = timedelta(seconds=2 * (fb.max_age if fb is not None else 300.0))  # as the app
    return pipeline.store.purge_feedback_requests(pipeline.clock.now() - window)


class Scheduler:
    """Runs ticks in real time until :meth:`stop` (or a signal) is received.

    Ticks of different metrics run side by side (one thread each, up to ``max_workers``):
    the pipeline lets one tick of a metric run at a time and serializes only their commit
    steps (incidents, alert groups and the tick's transaction: its *commit lock*), so a
    metric whose detection takes long holds up no other metric's tick. A steady tick's poll
    is made before the tick (:meth:`Pipeline.prefetch`), outside every lock.

    Delivery has a lock of its own, the *send lock*: one outbox pass at a time. A pass only
    claims outbox rows and calls the notifiers, so it runs beside the ticks: a page already
    in the outbox is not held back by a tick that takes minutes, and a receiver that times
    out does not hold the ticks up. Two passes of one worker must not overlap: a pass that
    leaves an unreachable receiver's rows for later releases the worker's leases, and would
    free a row the other pass is still sending, to be sent twice.

    Delivery runs in its own thread (not in the tick jobs' pool, where long ticks could take
    every worker): a pass every ``DELIVERY_EVERY``, and one as soon as a tick ends (the tick
    wakes it). A pass flushes the due alert groups whether ticks run or not (a group whose
    ``group_wait`` ends during a long tick goes out at the next pass, not when that tick
    commits); only during a tick's commit step does it skip the flush, which that commit
    makes itself. Then it sends what is in the outbox.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        on_tick: Callable[[TickResult], None] | None = None,
        on_deliver: Callable[[DeliveryReport], None] | None = None,
        max_workers: int = 4,
        join: Callable[[threading.Thread, float], None] = threading.Thread.join,
    ) -> None:
        """``join``: how a stop waits for the delivery thread, at most a number of seconds
        (a test's fake returns at once; see :meth:`_stop_delivery`)."""
        self.pipeline = pipeline
        self.delivery_stop_timeout = pipeline.config.scheduler.delivery_stop_timeout
        self._join = join
        self.on_tick = on_tick
        self.on_deliver = on_deliver
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        #: set by whoever wants a pass; cleared by the pass that then starts: a caller that
        #: finds a pass running leaves its rows to that pass, which goes again when it ends
        self._send_again = threading.Event()
        self._wake = threading.Event()  # a tick ended: deliver now, not at the next period
        self._delivery_stop = threading.Event()
        self._delivery_final = False  # the thread's last pass, at a stop
        self._delivery: threading.Thread | None = None
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(pipeline.config.scheduler.misfire_grace.total_seconds()),
            },
            timezone="UTC",
        )

    def _tick(self, metric: str) -> None:
        # the poll first, outside every lock: a slow or retrying source holds up its own
        # metrics only, not every metric's tick (see Pipeline.prefetch)
        self.pipeline.prefetch(metric)
        result = self.pipeline.tick(metric)
        self._wake.set()  # what it enqueued goes out now, from the delivery thread
        if self.on_tick:
            self.on_tick(result)

    def _deliver(self) -> None:
        """Flush and send (at stop, when the ticks are done)."""
        self._send(self._flush(wait=True))

    def _deliver_job(self) -> None:
        """One delivery pass: flush the due groups unless a tick's commit step is running (it
        flushes them itself, and the tick wakes delivery when it ends), then send what is
        due."""
        self._send(self._flush(wait=False))

    def _flush(self, *, wait: bool) -> Counter[str]:
        """Due groups into the outbox (under the pipeline's commit lock; ``wait=False``:
        nothing if a commit step holds it, which flushes them itself); a failure is logged
        and the pass sends what is already queued all the same: one group that cannot be
        flushed must not keep every queued page from going out."""
        try:
            flushed = self.pipeline.flush_due(wait=wait)
        except Exception:
            log.exception("delivery: flushing the due alert groups failed; sending what is "
                          "already in the outbox")
            return Counter()
        return Counter() if flushed is None else flushed.by_receiver

    def _send(self, enqueued: Counter[str]) -> None:
        """Send what is due, never in two passes at once and never waiting for a pass:
        if one is running, it goes again when it ends (so what was just flushed does not wait
        for the next period) and this returns."""
        self._send_again.set()
        while self._send_again.is_set():
            if not self._send_lock.acquire(blocking=False):
                if enqueued:  # counted now; the running pass sends them
                    self._delivered(DeliveryReport(enqueued=enqueued))
                return
            try:
                self._send_again.clear()  # after acquiring: no request is lost
                report = self.pipeline.send_due()
            finally:
                self._send_lock.release()
            report.enqueued, enqueued = enqueued, Counter()
            self._delivered(report)

    def _delivered(self, report: DeliveryReport) -> None:
        if self.on_deliver:
            self.on_deliver(report)
        if report.errors:
            log.warning("delivery: %d sent, %d to retry, %d dead", report.sent, report.retried,
                        report.dead)

    def _delivery_loop(self) -> None:
        """Delivery's own cadence: a pass at start (what a crash left queued goes out before
        the start-up catch-up ticks end), then every ``DELIVERY_EVERY`` and after every tick,
        and a last one at a stop (after the ticks ended: it flushes what they left due).
        A failed pass (the store unreachable) is logged and the next one tries again."""
        while True:
            try:
                self._deliver_job()
            except Exception:
                log.exception("delivery pass failed; the next one tries again")
            self._wake.wait(DELIVERY_EVERY.total_seconds())
            self._wake.clear()
            if self._delivery_stop.is_set():
                break
        if self._delivery_final:
            try:
                self._deliver()
            except Exception:
                log.exception("the last delivery pass failed; the outbox keeps what it did "
                              "not send for the next start")

    def _start_delivery(self) -> None:
        self._delivery_stop.clear()
        self._delivery = threading.Thread(target=self._delivery_loop, name="cxmon-delivery",
                                          daemon=True)
        self._delivery.start()

    def _stop_delivery(self, *, final: bool = False) -> bool:
        """End the delivery thread: let the running pass finish (and with ``final`` make a
        last one, the ticks being done), waiting at most ``delivery_stop_timeout``; True if
        it ended. A pass that is still sending then (a webhook that hangs) is left behind, a
        daemon thread that dies with the process: its rows stay pending in the outbox, their
        leases freed at the next start on this host (:meth:`OutboxWorker.deliver_due`), and
        the log says how many are left. Why bounded: SIGTERM must stop the monitor (systemd
        and Kubernetes kill it after their own grace, mid-write), not wait for a receiver."""
        self._delivery_final = final
        self._delivery_stop.set()
        self._wake.set()
        thread, self._delivery = self._delivery, None
        if thread is None:
            return True
        self._join(thread, self.delivery_stop_timeout.total_seconds())
        if not thread.is_alive():
            return True
        try:
            left = self.pipeline.store.outbox_counts().get("pending", 0)
            what = f"{left} notification(s) left"
        except Exception:  # the store's trouble may be why the pass hangs
            what = "what it did not send is left"
        log.warning("stopping: a delivery pass was still sending after %s (a receiver that "
                    "does not answer?); %s in the outbox for the next start",
                    format_duration(self.delivery_stop_timeout), what)
        return False

    def start(self) -> None:
        """Add the jobs, start the scheduler threads and the delivery thread."""
        now = self.pipeline.clock.now()
        jitter = self.pipeline.config.scheduler.jitter
        for metric in self.pipeline.config.active_metrics:
            first = first_poll(now, metric.interval, metric.delay)
            self._scheduler.add_job(
                self._tick,
                aligned_trigger(metric.interval, first, jitter=jitter),
                args=[metric.name],
                id=f"poll:{metric.name}",
                name=f"poll {metric.name}",
                next_run_time=now,  # catch up at start, then on the aligned schedule
            )
        self._scheduler.add_job(lambda: run_retention(self.pipeline), "interval",
                                seconds=RETENTION_EVERY.total_seconds(), id="retention",
                                next_run_time=now)
        self._start_delivery()
        self._scheduler.start()

    def stop(self) -> None:
        self._stop.set()

    def run_until_stopped(self, install_signal_handlers: bool = True) -> None:
        """Block until stopped; the running tick finishes before this returns."""
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._on_signal)
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            log.info("stopping: waiting for running ticks to finish")
            self._scheduler.shutdown(wait=True)
            delivered = self._stop_delivery(final=True)
            # the log alone must show the process ended cleanly, not in the middle of a tick
            log.info("stopped: ticks finished and %s",
                     "the outbox delivered once more" if delivered else
                     "delivery left for the next start")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        self._stop.set()


def replay_steps(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    """Times at which a replay ticks: every ``step`` from ``start`` up to ``end`` inclusive."""
    t = start
    while t <= end:
        yield t
        t += step
    if start <= end and t - step < end:  # always finish exactly at ``end``
        yield end


def _delivered(report: DeliveryReport, on_deliver: Callable[[DeliveryReport], None] | None
               ) -> None:
    if on_deliver is not None:
        on_deliver(report)


def replay(
    pipeline: Pipeline,
    clock: FakeClock,
    end: datetime,
    *,
    step: timedelta | None = None,
    deliver: bool = True,
    on_step: Callable[[datetime, list[TickResult]], None] | None = None,
    on_deliver: Callable[[DeliveryReport], None] | None = None,
) -> list[TickResult]:
    """Advance ``clock`` to ``end`` in steps, ticking every metric and delivering at each step.

    ``on_deliver`` gets every delivery pass's report, as the scheduler's delivery job passes
    it on (``Telemetry.on_deliver``: notifications flushed from alert groups are counted).

    ``step`` defaults to the smallest metric interval. Metrics whose bucket is not complete yet
    skip cheaply, so each metric still ticks at its own interval. Between steps the clock also
    stops at every alert group's flush time (``group_wait``, ``group_interval``,
    ``repeat_interval``), so simulated notifications go out when real ones would.
    """
    step = step or min(m.interval for m in pipeline.config.active_metrics)
    results: list[TickResult] = []
    for t in replay_steps(clock.now(), end, step):
        while deliver and (due := pipeline.next_flush_at()) is not None and (
                clock.now() < due < t):
            clock.set(due)  # an alert group's group_wait / group_interval ends between steps
            _delivered(pipeline.deliver(), on_deliver)
        clock.set(t)
        step_results = [pipeline.tick(m.name) for m in pipeline.config.active_metrics]
        if deliver:
            _delivered(pipeline.deliver(), on_deliver)
        results.extend(step_results)
        if on_step:
            on_step(t, step_results)
    return results
