"""A steady tick's poll is made before the tick lock (``Pipeline.prefetch``): a slow or
retrying source holds up its own metrics only, not every metric's tick.

Driven by events the test controls; the fake clock moves only when the test says."""

from __future__ import annotations

import threading

import pandas as pd

from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.pipeline import Pipeline
from monitor.scheduler import Scheduler
from monitor.store import Store
from sources.base import PollRequest
from tests.test_sources_pipeline import STEP, T0, Shop

WAIT = 30  # seconds: only how long a broken test hangs before it fails

CONFIG = """
store: "sqlite:///{db}"
sources:
  zendesk: {{type: demo}}
  warehouse: {{type: demo}}
metrics:
  - {{name: tickets, source: zendesk, interval: 5m, query: orders, timestamp: ts,
     dimensions: [channel], value: count}}
  - {{name: orders, source: warehouse, interval: 5m, query: orders, timestamp: ts,
     dimensions: [channel], value: count}}
alerting:
  receivers: [{{name: console, console: {{format: json}}}}]
"""


class SlowShop(Shop):
    """A source whose fetch waits until released once ``gated``: an API timing out."""

    def __init__(self) -> None:
        super().__init__()
        self.gated = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        if self.gated:
            self.entered.set()
            if not self.release.wait(WAIT):
                raise AssertionError("the test never released the fetch")
        return super().fetch(request)


def pipeline(tmp_path, zendesk: Shop, warehouse: Shop) -> tuple[Pipeline, FakeClock]:
    cfg = parse_config(CONFIG.format(db=tmp_path / "s.db"), env={})
    clock = FakeClock(T0 + STEP)
    p = Pipeline(cfg, Store.open(cfg.store.url), clock=clock,
                 sources={"zendesk": zendesk, "warehouse": warehouse},
                 notifiers={"console": object()})  # type: ignore[dict-item] - not delivered
    for metric in ("tickets", "orders"):  # first ticks: both have a cursor now
        assert p.tick(metric).ok
    clock.advance(STEP)
    return p, clock


def test_a_slow_source_does_not_hold_up_another_metrics_tick(tmp_path) -> None:
    zendesk, warehouse = SlowShop(), Shop()
    p, _ = pipeline(tmp_path, zendesk, warehouse)
    sched = Scheduler(p)
    zendesk.gated = True
    slow = threading.Thread(target=sched._tick, args=["tickets"])
    slow.start()
    try:
        assert zendesk.entered.wait(WAIT)  # tickets' poll hangs on the API
        sched._tick("orders")  # ... and orders ticks all the same
        assert p.store.get_cursor("orders") == T0 + 2 * STEP
        assert p.store.get_cursor("tickets") == T0 + STEP
        assert slow.is_alive()
    finally:
        zendesk.release.set()
        slow.join(WAIT)
    assert p.store.get_cursor("tickets") == T0 + 2 * STEP
    # the tick used the poll made before it: the API was asked once for that bucket
    assert [(r.since, r.until) for r in zendesk.requests[-1:]] == [(T0 + STEP, T0 + 2 * STEP)]
    assert len(zendesk.requests) == 2  # the first tick's, and the prefetched one
    p.close()
    p.store.close()


def test_a_prefetch_for_another_range_is_not_used_and_errors_fail_the_tick(tmp_path) -> None:
    zendesk, warehouse = Shop(), Shop()
    p, clock = pipeline(tmp_path, zendesk, warehouse)
    p.prefetch("tickets")
    clock.advance(STEP)  # the tick comes a bucket later (it waited): two buckets to poll
    assert p.tick("tickets").ok
    assert [(r.since, r.until) for r in zendesk.requests[-2:]] == [
        (T0 + STEP, T0 + 2 * STEP), (T0 + STEP, T0 + 3 * STEP)]  # polled again, whole
    # a source error met by the prefetch fails the tick as if the tick had met it
    zendesk.down = True
    clock.advance(STEP)
    p.prefetch("tickets")
    zendesk.down = False
    failed = p.tick("tickets")
    assert not failed.ok and "HTTP 503" in (failed.error or "")
    assert p.tick("tickets").ok  # retried on the next tick, which polls for itself
    p.close()
    p.store.close()
