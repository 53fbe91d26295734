"""Delivery beside detection: the real-time scheduler's delivery passes do not wait for a
tick, ticks do not wait for a send, and overlapping passes never send a row twice.

Everything is driven by events the test controls (a source whose fetch waits, a notifier
whose send waits); the fake clock never moves, nothing sleeps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pytest

from alerts.notifiers.base import NotifyError
from alerts.outbox import DeliveryReport
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.model import Notification
from monitor.pipeline import Pipeline
from monitor.scheduler import Scheduler
from monitor.store import Store
from sources.base import PollRequest
from tests.test_sources_pipeline import CONFIG, STEP, T0, Shop

WAIT = 30  # seconds: only how long a broken test hangs before it fails


class GatedShop(Shop):
    """A source whose fetch waits until released: a tick that takes as long as we like."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        self.entered.set()
        if not self.release.wait(WAIT):
            raise AssertionError("the test never released the fetch")
        return super().fetch(request)


class Receiver:
    """Records what it got; its first send waits until released when ``gated``."""

    def __init__(self, *, gated: bool = False) -> None:
        self.sent: list[str] = []
        self.gated = gated
        self.entered = threading.Event()
        self.release = threading.Event()
        self.got = threading.Event()

    def send(self, payload: dict) -> None:
        if self.gated:
            self.gated = False
            self.entered.set()
            if not self.release.wait(WAIT):
                raise AssertionError("the test never released the send")
        self.sent.append(payload["n"])
        self.got.set()


class Hung:
    """A receiver that times out (unreachable): its other rows wait for a later pass."""

    def __init__(self) -> None:
        self.tried: list[str] = []

    def send(self, payload: dict) -> None:
        self.tried.append(payload["n"])
        raise NotifyError("timed out after 10s", retryable=True, unreachable=True)


@pytest.fixture
def make(store_url: str) -> Iterator:
    made: list[tuple[Pipeline, Store]] = []

    def build(notifiers: dict, source: Shop | None = None) -> tuple[Pipeline, Store]:
        text = CONFIG.format(db="DB", extra="").replace("sqlite:///DB", store_url)
        cfg = parse_config(text, env={})
        store = Store.open(cfg.store.url)
        p = Pipeline(cfg, store, clock=FakeClock(T0 + STEP),
                     sources={"shop": source or Shop()}, notifiers=notifiers)
        made.append((p, store))
        return p, store

    yield build
    for p, store in made:
        p.close()
        store.close()


def enqueue(p: Pipeline, *rows: tuple[str, str]) -> None:
    """Outbox rows ``(name, receiver)``, one incident each: what a committed tick leaves."""
    with p.store.transaction() as tx:
        tx.enqueue([Notification(f"n-{n}", receiver, f"inc-{n}", {"n": n})
                    for n, receiver in rows], p.clock.now())


def test_a_queued_page_is_sent_while_a_tick_of_another_metric_is_still_running(make):
    """Ticks and deliveries shared one lock and the delivery job skipped while a tick ran:
    a page already in the outbox waited for the whole tick (a first tick of 20k series:
    30 s; a catch-up after downtime: minutes)."""
    shop, pager = GatedShop(), Receiver()
    p, store = make({"console": pager}, shop)
    sched = Scheduler(p)
    enqueue(p, ("page", "console"))
    tick = threading.Thread(target=sched._tick, args=["orders"])
    tick.start()
    try:
        assert shop.entered.wait(WAIT)  # the tick is in its source's fetch, holding the lock
        sched._deliver_job()
        assert pager.sent == ["page"]
        assert tick.is_alive()  # ... and it was sent before the tick ended
    finally:
        shop.release.set()
        tick.join(WAIT)
    assert store.get_cursor("orders") is not None  # the tick then ended normally


def test_ticks_go_on_while_a_receiver_hangs_in_a_send(make):
    """A webhook timing out held the one lock for the whole send: every metric's tick
    waited for it."""
    hook = Receiver(gated=True)
    p, store = make({"console": hook})
    sched = Scheduler(p)
    enqueue(p, ("alert", "console"))
    job = threading.Thread(target=sched._deliver_job)
    job.start()
    try:
        assert hook.entered.wait(WAIT)  # the send hangs
        ticker = threading.Thread(target=sched._tick, args=["orders"])
        ticker.start()
        ticker.join(WAIT)
        assert not ticker.is_alive()  # the tick did not wait for the send
        assert store.get_cursor("orders") == T0 + STEP  # ... and committed
        assert hook.sent == []  # while the send was still hanging
        assert sched._wake.is_set()  # the tick asks the delivery thread for a pass at once
    finally:
        hook.release.set()
        job.join(WAIT)
    assert hook.sent == ["alert"]


def test_overlapping_passes_never_send_a_row_twice_and_nothing_waits_for_the_next(make):
    """A tick-triggered pass beside the periodic one: both with the same lease owner, the
    second pass left a hung receiver's rows for later by releasing the worker's leases,
    which freed the row the first pass was still sending, and a third pass sent it again.
    Now a pass that finds one running returns at once, and the running pass goes again for
    what was enqueued meanwhile."""
    slack, hook = Receiver(gated=True), Hung()
    p, store = make({"console": slack, "hook": hook})
    reports: list[DeliveryReport] = []
    sched = Scheduler(p, on_deliver=reports.append)
    enqueue(p, ("first", "console"))
    running = threading.Thread(target=sched._deliver_job)
    running.start()
    try:
        assert slack.entered.wait(WAIT)  # the periodic pass is sending "first"
        enqueue(p, ("a", "hook"), ("b", "hook"))  # a tick commits two alerts meanwhile
        sched._deliver_job()  # the pass that tick asks for
        sched._deliver_job()  # and the next period's
        assert hook.tried == [] and slack.sent == []  # both returned without sending
    finally:
        slack.release.set()
        running.join(WAIT)
    assert slack.sent == ["first"]  # once
    assert [r.idempotency_key for r in store.notifications("sent")] == ["n-first"]
    # the running pass tried "a" (hook timed out: "b" left for later), and went again as
    # the overlapping callers asked: "b" got its own attempt without waiting for a period
    assert hook.tried == ["a", "b"]
    assert [(r.sent, r.retried, r.deferred) for r in reports] == [(1, 1, 1), (0, 1, 0)]


def test_rows_enqueued_as_a_pass_ends_do_not_wait_for_the_next_period(make):
    """A caller that finds a pass running returns at once; if that pass had already looked
    at the outbox for the last time, what the caller flushed would wait for the next period
    (5 s, or the next tick): the running pass goes again instead."""
    sink = Receiver()
    p, _store = make({"console": sink})
    at_end, go_on = threading.Event(), threading.Event()
    send_due = p.send_due

    def ending() -> DeliveryReport:
        report = send_due()
        if not at_end.is_set():  # the first pass: done with the outbox, not yet returned
            at_end.set()
            if not go_on.wait(WAIT):
                raise AssertionError("the test never let the pass end")
        return report

    p.send_due = ending  # type: ignore[method-assign]
    sched = Scheduler(p)
    running = threading.Thread(target=sched._deliver_job)
    running.start()
    try:
        assert at_end.wait(WAIT)
        enqueue(p, ("late", "console"))  # a tick's flush right then ...
        sched._deliver_job()  # ... and its pass, which finds one running
        assert sink.sent == []
    finally:
        go_on.set()
        running.join(WAIT)
    assert sink.sent == ["late"]


def test_the_delivery_thread_delivers_when_woken_and_survives_a_failed_pass(make, caplog):
    """Delivery has a thread of its own (not a job in the tick pool, where ticks waiting
    for the tick lock could take every worker); a failing pass (the store down) must not
    end it."""
    sink = Receiver()
    p, _store = make({"console": sink})
    failures = [RuntimeError("store unreachable")]
    passes = threading.Semaphore(0)
    send_due = p.send_due

    def flaky() -> DeliveryReport:
        passes.release()
        if failures:
            raise failures.pop()
        return send_due()

    p.send_due = flaky  # type: ignore[method-assign]
    sched = Scheduler(p)
    sched._start_delivery()
    try:
        assert passes.acquire(timeout=WAIT)  # the pass at start fails
        enqueue(p, ("x", "console"))
        sched._wake.set()  # the next tick's: this one sends
        assert sink.got.wait(WAIT)
    finally:
        sched._stop_delivery()
    assert sink.sent == ["x"]
    assert sched._delivery is None  # stopped: the thread ended
    assert "delivery pass failed" in caplog.text


def test_a_group_flush_that_fails_does_not_keep_queued_pages_from_going_out(make, caplog):
    """Flush and send were one call: a group that could not be flushed (a store error, a
    bug in one payload) stopped every pass before it sent anything."""
    pager = Receiver()
    p, _store = make({"console": pager})

    def broken(**_kw: object) -> None:
        raise ValueError("a group's payload cannot be merged")

    p.flush_due = broken  # type: ignore[method-assign]
    enqueue(p, ("page", "console"))
    Scheduler(p)._deliver_job()
    assert pager.sent == ["page"]
    assert "flushing the due alert groups failed" in caplog.text


def test_what_a_crash_left_queued_goes_out_at_start_not_after_the_catch_up_ticks(make,
                                                                                monkeypatch):
    """The first delivery came with the end of the start-up catch-up ticks (or 5 s later): a
    restart whose first tick learns a long history held the pages a crash left queued."""
    import monitor.scheduler as scheduler

    monkeypatch.setattr(scheduler, "DELIVERY_EVERY", timedelta(hours=1))  # no period helps
    pager = Receiver()
    p, _store = make({"console": pager})
    enqueue(p, ("left", "console"))
    sched = Scheduler(p)
    sched._start_delivery()
    try:
        assert pager.got.wait(WAIT)  # no tick, no wake: the pass at start sent it
    finally:
        sched._stop_delivery()
    assert pager.sent == ["left"]


def test_a_stop_waits_for_a_hung_webhook_only_so_long_and_its_rows_stay_queued(make, caplog):
    """A stop joined the delivery thread without a limit: a webhook that never answered
    held SIGTERM until systemd or Kubernetes killed the process mid-write. The wait is now
    ``scheduler.delivery_stop_timeout``; the unsent row stays pending for the next start."""
    hook = Receiver(gated=True)
    p, store = make({"console": hook})
    waited: list[float] = []
    # the stop's wait for the thread: returns at once, as a timeout that ran out would
    sched = Scheduler(p, join=lambda _thread, seconds: waited.append(seconds))
    enqueue(p, ("page", "console"))
    sched._start_delivery()
    thread = sched._delivery
    assert thread is not None
    try:
        assert hook.entered.wait(WAIT)  # the pass at start hangs in the send
        assert sched._stop_delivery(final=True) is False  # ... and the stop returns
        assert waited == [30.0]  # the default, from the config
        assert store.outbox_counts()["pending"] == 1
        assert hook.sent == []
        assert ("a delivery pass was still sending after 30s (a receiver that does not "
                "answer?); 1 notification(s) left in the outbox for the next start"
                ) in caplog.text
    finally:
        hook.release.set()
        thread.join(WAIT)


def test_a_stop_ends_with_a_last_delivery_pass(make, monkeypatch):
    """What the last ticks left in the outbox goes out before the process ends (the
    delivery thread's last pass, bounded like the others)."""
    import monitor.scheduler as scheduler

    monkeypatch.setattr(scheduler, "DELIVERY_EVERY", timedelta(hours=1))  # no period helps
    pager = Receiver()
    p, _store = make({"console": pager})
    passes = threading.Semaphore(0)
    send_due = p.send_due

    def counted() -> DeliveryReport:
        report = send_due()
        passes.release()  # after the claim: a row enqueued later is the next pass's
        return report

    p.send_due = counted  # type: ignore[method-assign]
    sched = Scheduler(p)
    sched._start_delivery()
    assert passes.acquire(timeout=WAIT)  # the pass at start, with nothing to send
    enqueue(p, ("last", "console"))  # what the last tick committed
    assert sched._stop_delivery(final=True) is True
    assert pager.sent == ["last"]
