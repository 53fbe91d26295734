"""Ticks of different metrics run side by side but for their commit step: a metric whose
detection takes long (50,000 series) holds up no other metric's tick, and what the ticks
share (the open incidents, the alert groups) is changed and committed under one lock.

Driven by events the test controls (a detector that waits until released); the fake clock
moves only when the test says; nothing sleeps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.clock import FakeClock
from monitor.detection import DetectionResult, MetricDetectors
from monitor.model import Anomaly, Direction
from monitor.pipeline import Pipeline
from monitor.scheduler import Scheduler
from monitor.store.transaction import StoreTx
from tests.test_scheduler_prefetch import pipeline
from tests.test_sources_pipeline import STEP, T0, Shop

WAIT = 30  # seconds: only how long a broken test hangs before it fails


class Gate:
    """Makes one metric's detection wait until released: a heavy detection, as long as the
    test likes. Other metrics' detections run as usual (``extra``: anomalies added to
    theirs)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.armed = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.extra: dict[str, list[Anomaly]] = {}


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate("tickets")
    run = MetricDetectors.run

    def gated(self: MetricDetectors, *args: object, **kwargs: object) -> DetectionResult:
        if self.metric == g.metric and g.armed:
            g.entered.set()
            if not g.release.wait(WAIT):
                raise AssertionError("the test never released the detection")
        result = run(self, *args, **kwargs)  # type: ignore[arg-type]
        result.anomalies += g.extra.pop(self.metric, [])
        return result

    monkeypatch.setattr(MetricDetectors, "run", gated)
    yield g
    g.release.set()


def spike(p: Pipeline, metric: str) -> Anomaly:
    """An anomaly in the newest bucket of one of ``metric``'s series, as a detector finds."""
    key = next(k for k in p.store.series_labels(metric) if 'channel="app"' in k)
    at = p.clock.now() - STEP
    return Anomaly(series=key, metric=metric, labels=p.store.series_labels(metric)[key],
                   timestamp=at, value=500.0, expected=100.0, lower=90.0, upper=110.0,
                   score=0.999999, severity=60, direction=Direction.UP, detector="default")


def test_a_heavy_detection_of_one_metric_does_not_hold_up_another_metrics_tick(
        tmp_path, gate: Gate) -> None:
    """Detection, incidents and commit of all metrics ran under one tick lock: a metric of
    50,000 series (seconds of detection) delayed every other metric's tick by as long."""
    p, _ = pipeline(tmp_path, Shop(), Shop())
    sched = Scheduler(p)
    gate.armed = True
    heavy = threading.Thread(target=sched._tick, args=["tickets"])
    heavy.start()
    try:
        assert gate.entered.wait(WAIT)  # tickets is detecting, and takes its time
        sched._tick("orders")  # ... orders ticks all the same, start to commit
        assert p.store.get_cursor("orders") == T0 + 2 * STEP
        assert p.store.get_cursor("tickets") == T0 + STEP
        assert heavy.is_alive()
    finally:
        gate.release.set()
        heavy.join(WAIT)
    assert p.store.get_cursor("tickets") == T0 + 2 * STEP  # then it committed too
    p.close()
    p.store.close()


def test_a_failed_commit_undoes_its_own_incident_changes_not_another_metrics(
        tmp_path, gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The incidents were snapshotted when a tick started and put back when it failed:
    with ticks side by side, that put back the tracker as it was before another metric's
    commit made meanwhile, and forgot the incident that metric had opened (its next
    anomaly opened it a second time). The snapshot is now the commit step's own."""
    p, _ = pipeline(tmp_path, Shop(), Shop())
    set_cursor = StoreTx.set_cursor

    def failing(self: StoreTx, metric: str, until: object) -> None:
        if metric == "tickets":
            raise RuntimeError("disk full, in the middle of the commit")
        set_cursor(self, metric, until)  # type: ignore[arg-type]

    monkeypatch.setattr(StoreTx, "set_cursor", failing)
    gate.armed = True
    gate.extra["tickets"] = [replace(spike(p, "tickets"), severity=70)]
    gate.extra["orders"] = [spike(p, "orders")]
    results = []
    heavy = threading.Thread(target=lambda: results.append(p.tick("tickets")))
    heavy.start()
    try:
        assert gate.entered.wait(WAIT)
        assert p.tick("orders").incidents  # orders opens an incident, committed
        opened = {inc.key for inc in p.incidents.open.values()}
        assert len(opened) == 1
    finally:
        gate.release.set()
        heavy.join(WAIT)
    (failed,) = results
    assert failed.error == "disk full, in the middle of the commit"
    # tickets' own change (its anomaly in the same incident) is undone, orders' is kept
    assert {inc.key for inc in p.incidents.open.values()} == opened
    (inc,) = p.incidents.open.values()
    assert inc.severity == 60 and all("orders" in s for s in inc.series)
    assert [row["key"] for row in p.store.open_incidents()] == sorted(opened)
    p.close()
    p.store.close()


def test_the_group_flush_waits_only_for_a_commit_not_for_a_detection(tmp_path,
                                                                    gate: Gate) -> None:
    """Flushing the due alert groups reads and writes what a tick's commit step does, so
    it takes the same lock; a detection of any length holds neither."""
    p, _ = pipeline(tmp_path, Shop(), Shop())
    gate.armed = True
    heavy = threading.Thread(target=p.tick, args=["tickets"])
    heavy.start()
    try:
        assert gate.entered.wait(WAIT)
        assert not p._commit_lock.locked()  # the point of the test
        p.flush_due()  # returns during the detection
        assert heavy.is_alive()
    finally:
        gate.release.set()
        heavy.join(WAIT)
    p.close()
    p.store.close()


class Pager:
    """Records what it is sent."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, payload: dict) -> None:
        self.sent.append(payload)


def test_a_group_whose_wait_ends_during_a_long_tick_goes_out_before_that_tick_ends(
        tmp_path, gate: Gate) -> None:
    """A delivery pass skipped the group flush while any tick ran, so a new incident's first
    message, due when its ``group_wait`` (30 s) ended, waited for the end of whatever tick
    was running: the whole history of a first tick, a catch-up, a heavy detection. A pass
    now flushes during a tick's detection; only a commit step, which flushes itself, makes
    it skip."""
    from monitor.config import parse_config
    from monitor.store import Store
    from tests.test_scheduler_prefetch import CONFIG

    cfg = parse_config(CONFIG.format(db=tmp_path / "s.db"), env={})
    clock = FakeClock(T0 + STEP)
    pager = Pager()
    p = Pipeline(cfg, Store.open(cfg.store.url), clock=clock,
                 sources={"zendesk": Shop(), "warehouse": Shop()}, notifiers={"console": pager})
    for metric in ("tickets", "orders"):
        assert p.tick(metric).ok
    clock.advance(STEP)
    gate.extra["orders"] = [spike(p, "orders")]
    assert p.tick("orders").incidents  # an incident opens; its group waits 30 s
    assert p.store.outbox_counts()["pending"] == 0
    clock.advance(timedelta(seconds=31))
    sched = Scheduler(p)
    gate.armed = True
    heavy = threading.Thread(target=sched._tick, args=["tickets"])
    heavy.start()
    try:
        assert gate.entered.wait(WAIT)  # tickets' detection takes its time ...
        sched._deliver_job()  # ... and the periodic pass flushes and sends all the same
        assert len(pager.sent) == 1
        assert heavy.is_alive()
    finally:
        gate.release.set()
        heavy.join(WAIT)
    p.close()
    p.store.close()
