"""``history``: a metric's first tick learns from the past and alerts only on the newest bucket."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.pipeline import Pipeline
from monitor.store import Store

ANCHOR = datetime(2026, 1, 5, tzinfo=UTC)
INCIDENT = ANCHOR + timedelta(days=22, hours=11)  # app/uk checkout drop-off, 6 hours

CONFIG = """
store: sqlite:///{db}
sources:
  shop: {{type: demo, anchor: "2026-01-05T00:00:00Z"}}
metrics:
  - name: checkout_dropoff_rate
    source: shop
    query: checkout
    interval: 1h
    timestamp: ts
    dimensions: [channel, region]
    value: {{ratio: [abandoned, started]}}
    labels: {{journey: checkout}}
    direction: up
    min_change: 0.1
    history: {history}
alerting:
  receivers: [{{name: collect, console: {{}}}}]
"""


class Collect:
    def __init__(self) -> None:
        self.payloads: list[Mapping[str, Any]] = []

    def send(self, payload: Mapping[str, Any]) -> None:
        self.payloads.append(payload)

    def deliver(self, payload: Mapping[str, Any], key: str) -> None:
        self.send(payload)


def first_tick(tmp_path: Path, history: str) -> tuple[Store, Collect, Any]:
    cfg = parse_config(CONFIG.format(db=tmp_path / f"h{history}.db", history=history))
    store = Store.open(cfg.store.url)
    sink = Collect()
    # two hours into the incident: the 11:00 bucket is history, 12:00 is the newest bucket
    clock = FakeClock(INCIDENT + timedelta(hours=2))
    pipeline = Pipeline(cfg, store, clock=clock, notifiers={"collect": sink})  # type: ignore[dict-item]
    result = pipeline.tick("checkout_dropoff_rate")
    clock.advance(timedelta(seconds=30))  # the root route's group_wait
    pipeline.deliver()
    return store, sink, result


def test_first_tick_learns_history_and_alerts_only_on_the_newest_bucket(tmp_path: Path) -> None:
    store, sink, result = first_tick(tmp_path, "21d")
    assert result.ok and result.since == INCIDENT + timedelta(hours=2) - timedelta(days=21)
    flagged = store.anomalies()
    assert set(flagged["ts"]) == {INCIDENT, INCIDENT + timedelta(hours=1)}  # found and stored
    assert len(sink.payloads) == 1  # one alert, about the newest bucket only
    alerted = {a["timestamp"] for a in sink.payloads[0]["anomalies"]}
    assert alerted == {(INCIDENT + timedelta(hours=1)).isoformat()}
    store.close()


def test_without_history_the_first_tick_cannot_judge(tmp_path: Path) -> None:
    store, sink, result = first_tick(tmp_path, "0s")
    assert result.ok and result.until - result.since == timedelta(hours=1)
    assert store.anomalies().empty and sink.payloads == []  # cold detectors: warm-up
    store.close()


def test_first_tick_honours_the_whole_history_beyond_the_catchup_cap(
        tmp_path: Path, monkeypatch: Any) -> None:
    # 21d at 1h is 504 buckets; the catch-up cap (after downtime) must not cut the history
    monkeypatch.setattr("monitor.pipeline.MAX_CATCHUP_BUCKETS", 100)
    store, sink, result = first_tick(tmp_path, "21d")
    assert result.ok and result.since == INCIDENT + timedelta(hours=2) - timedelta(days=21)
    assert len(sink.payloads) == 1  # warmed up: the newest bucket alerts
    store.close()


def test_a_long_catchup_runs_the_whole_gap_in_chunks_and_says_so(
        tmp_path: Path, monkeypatch: Any, caplog: Any) -> None:
    monkeypatch.setattr("monitor.pipeline.MAX_CATCHUP_BUCKETS", 5)
    cfg = parse_config(CONFIG.format(db=tmp_path / "c.db", history="0s"))
    store = Store.open(cfg.store.url)
    clock = FakeClock(ANCHOR + timedelta(days=1))
    pipeline = Pipeline(cfg, store, clock=clock, notifiers={"collect": Collect()})  # type: ignore[dict-item]
    assert pipeline.tick("checkout_dropoff_rate").ok
    clock.advance(timedelta(hours=12))  # downtime: 12 buckets to catch up, 5 per poll
    with caplog.at_level("WARNING", logger="monitor.pipeline"):
        result = pipeline.tick("checkout_dropoff_rate")
    assert result.ok and result.until - result.since == timedelta(hours=12)  # all of it
    assert store.get_cursor("checkout_dropoff_rate") == result.until
    assert "catching up 12 buckets" in caplog.text and "in chunks of at most 5" in caplog.text
    chunks = sorted((t["since"], t["until"]) for t in store.ticks("checkout_dropoff_rate"))[1:]
    assert [(b - a) // timedelta(hours=1) for a, b in chunks] == [5, 5, 2]  # committed alone
    assert chunks[0][0] == result.since and chunks[-1][1] == result.until
    assert all(a[1] == b[0] for a, b in pairwise(chunks))
    store.close()
