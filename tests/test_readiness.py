"""``/readyz`` (every metric ticked well lately) next to ``/healthz`` (liveness), and the last
good tick's time read from the monitor's clock, never the wall clock (fake clock, no sleep)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import CollectorRegistry

from dashboards.exporter import READY_MIN_WINDOW, Exporter, ready_windows
from monitor.clock import FakeClock
from monitor.config import load_config, parse_config
from monitor.pipeline import TickResult

START = datetime(2026, 1, 5, 12, tzinfo=UTC)


def _config():
    return parse_config(_config_text(), env={})


def _config_text() -> str:
    return """
store: sqlite://
sources:
  shop: {type: demo, seed: 7, anchor: "2026-01-05T00:00:00Z"}
metrics:
  - {name: csat, source: shop, query: csat, interval: 5m, timestamp: ts,
     value: {mean: [rating_sum, responses]}}
  - {name: checkout_dropoff_rate, source: shop, query: checkout, interval: 1h, delay: 10m,
     timestamp: ts, value: {ratio: [abandoned, started]}}
  - {name: orders, source: shop, query: checkout, interval: 1m, timestamp: ts,
     value: {sum: started}}
alerting:
  route: {receiver: console}
  receivers: [{name: console, console: {}}]
"""


def _last_tick(ex: Exporter, metric: str) -> float | None:
    return ex.registry.get_sample_value("cxmon_last_tick_timestamp_seconds",
                                        {"cx_metric": metric})


def _tick_all(ex: Exporter, clock: FakeClock) -> None:
    for metric in ("csat", "checkout_dropoff_rate", "orders"):
        ex.observe(TickResult(metric, finished_at=clock.now()))


def test_the_last_tick_time_is_the_monitors_clock_not_the_wall_clock():
    """It was ``set_to_current_time()``: a replay (``cxmon demo``) or a test with a fake
    clock exported the wall clock's time, so its age said nothing about the ticks."""
    clock = FakeClock(START)
    ex = Exporter(registry=CollectorRegistry(), clock=clock)
    ex.observe(TickResult("csat"))  # no finished_at (an embedding program's result): the clock
    assert _last_tick(ex, "csat") == START.timestamp()
    clock.advance(timedelta(minutes=5))
    ex.observe(TickResult("csat", finished_at=START + timedelta(minutes=4)))  # the tick's end
    assert _last_tick(ex, "csat") == (START + timedelta(minutes=4)).timestamp()
    clock.advance(timedelta(minutes=5))
    ex.observe(TickResult("csat", error="boom", finished_at=clock.now()))  # not a good tick
    ex.observe(TickResult("csat", skipped="backing off"))
    assert _last_tick(ex, "csat") == (START + timedelta(minutes=4)).timestamp()


def test_a_pipeline_tick_ends_at_its_clocks_time_and_telemetry_exports_it(tmp_path):
    """End to end with the real pipeline: the exported last tick and ``/readyz`` follow the
    fake clock; a restarted monitor knows the last good tick from the store at once."""
    from dashboards.telemetry import Telemetry
    from monitor.pipeline import Pipeline
    from monitor.store import Store

    env = {**os.environ, "CXMON_DEMO_ANCHOR": "2026-01-05T00:00:00Z",
           "CXMON_DEMO_STORE": f"sqlite:///{tmp_path / 'd.db'}"}
    cfg = load_config("monitor/examples/demo.yaml", env=env)
    store = Store.open(cfg.store.url)
    clock = FakeClock(datetime(2026, 1, 5, 3, tzinfo=UTC))
    tel = Telemetry(cfg, store, registry=CollectorRegistry(), clock=clock)
    pipeline = Pipeline(cfg, store, clock=clock, notifiers={}, sources=tel.sources)
    try:
        result = pipeline.tick("checkout_dropoff_rate")
        assert result.ok and result.finished_at == clock.now()
        tel.on_tick(result)
        assert _last_tick(tel.exporter, "checkout_dropoff_rate") == clock.now().timestamp()
        ready, body = tel.exporter.readiness()
        assert not ready  # the demo's other metrics have not ticked yet
        assert "checkout_dropoff_rate" not in body["not_ready"]
        assert body["not_ready"]["csat"]["state"] == "pending"

        clock.advance(timedelta(minutes=7))
        tel2 = Telemetry(cfg, store, registry=CollectorRegistry(), clock=clock)  # a restart
        _, body2 = tel2.exporter.readiness()
        assert "checkout_dropoff_rate" not in body2["not_ready"]  # ticked 7 min ago: ready
        assert set(body2["not_ready"]) == set(body["not_ready"])
        assert _last_tick(tel2.exporter, "checkout_dropoff_rate") == result.finished_at.timestamp()
    finally:
        pipeline.close()
        store.close()


def test_ready_windows_are_three_intervals_with_a_floor():
    assert ready_windows(_config()) == {"csat": 900.0, "checkout_dropoff_rate": 3 * 3600.0,
                                        "orders": READY_MIN_WINDOW}
    assert READY_MIN_WINDOW == 600.0  # the 1-minute metric: 10 minutes, not 3


def test_readyz_follows_each_metrics_last_tick():
    clock = FakeClock(START)
    ex = Exporter.from_config(_config(), registry=CollectorRegistry(), clock=clock)
    ready, body = ex.readiness()
    assert not ready and body["status"] == "not ready" and body["metrics"] == 3
    assert {m: e["state"] for m, e in body["not_ready"].items()} == {
        "csat": "pending", "checkout_dropoff_rate": "pending", "orders": "pending"}
    assert body["not_ready"]["csat"]["last_success"] is None

    _tick_all(ex, clock)
    assert ex.readiness() == (True, {"status": "ready", "metrics": 3, "not_ready": {}})

    clock.advance(timedelta(minutes=9))  # orders (1m) and csat (5m) keep ticking
    ex.observe(TickResult("orders", finished_at=clock.now()))
    ex.observe(TickResult("csat", skipped="no complete bucket since the last tick"))
    assert ex.readiness()[0]  # csat: 9 min < 15 min
    clock.advance(timedelta(minutes=6, seconds=1))  # csat: 15 min 1 s since its good tick
    ex.observe(TickResult("orders", finished_at=clock.now()))
    ready, body = ex.readiness()
    assert not ready and list(body["not_ready"]) == ["csat"]
    stale = body["not_ready"]["csat"]
    assert stale == {"state": "stale", "last_success": "2026-01-05T12:00:00Z",
                     "seconds_since_success": 901.0, "window_seconds": 900.0}

    # a failed tick makes the metric not ready at once, however recent its last success
    ex.observe(TickResult("csat", finished_at=clock.now()))
    ex.observe(TickResult("orders", error="source shop: HTTP 401 for "
                                          "https://api.example/?token=hunter2",
                          finished_at=clock.now()))
    ready, body = ex.readiness()
    assert not ready and list(body["not_ready"]) == ["orders"]
    assert body["not_ready"]["orders"]["state"] == "failing"
    assert body["not_ready"]["orders"]["last_failure"] == "2026-01-05T12:15:01Z"
    assert body["not_ready"]["orders"]["seconds_since_success"] == 0.0
    assert "hunter2" not in str(body) and "401" not in str(body)  # never the error text
    ex.observe(TickResult("orders", skipped="backing off until ..."))  # still failing
    assert ex.readiness()[1]["not_ready"]["orders"]["state"] == "failing"
    clock.advance(timedelta(minutes=1))
    ex.observe(TickResult("orders", finished_at=clock.now()))  # recovered
    assert ex.readiness()[0]


def test_readyz_stays_red_for_a_metric_whose_every_tick_fails():
    clock = FakeClock(START)
    ex = Exporter.from_config(_config(), registry=CollectorRegistry(), clock=clock)
    _tick_all(ex, clock)
    for _ in range(4):
        clock.advance(timedelta(hours=1))
        _tick_all(ex, clock)
        ex.observe(TickResult("checkout_dropoff_rate", error="boom", finished_at=clock.now()))
    ready, body = ex.readiness()
    entry = body["not_ready"]["checkout_dropoff_rate"]
    assert not ready and entry["state"] == "failing"
    assert entry["seconds_since_success"] == 0.0  # _tick_all's tick of it succeeded just before
    clock.advance(timedelta(hours=3, seconds=1))  # no good tick for more than 3 intervals
    ex.observe(TickResult("checkout_dropoff_rate", error="boom", finished_at=clock.now()))
    entry = ex.readiness()[1]["not_ready"]["checkout_dropoff_rate"]
    assert entry["state"] == "failing" and entry["seconds_since_success"] == 3 * 3600 + 1


def test_an_exporter_without_metrics_is_ready():
    """An embedding program's bare ``Exporter()`` waits for nothing."""
    assert Exporter(registry=CollectorRegistry()).readiness() == (
        True, {"status": "ready", "metrics": 0, "not_ready": {}})


def test_readyz_over_http_is_503_then_200_and_healthz_stays_200():
    clock = FakeClock(START)
    ex = Exporter.from_config(_config(), registry=CollectorRegistry(), clock=clock)
    port = ex.start("127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{port}"
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 503 and r.headers["content-type"] == "application/json"
        assert r.json()["not_ready"]["orders"]["state"] == "pending"
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        _tick_all(ex, clock)
        r = httpx.get(f"{base}/readyz?verbose=1")
        assert r.status_code == 200 and r.json() == {"status": "ready", "metrics": 3,
                                                     "not_ready": {}}
        ex.observe(TickResult("csat", error="boom", finished_at=clock.now()))
        assert httpx.get(f"{base}/readyz").status_code == 503
        assert httpx.get(f"{base}/healthz").status_code == 200  # liveness: restart cures nothing
        missing = httpx.get(f"{base}/ready")
        assert missing.status_code == 404 and "/readyz" in missing.text
    finally:
        ex.stop()


def test_the_runbooks_readyz_example_is_what_readyz_answers():
    """docs/operations.md shows a 503 body; SREs write checks against its keys."""
    import json
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    section = text[text.index("## Probes"):]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
    clock = FakeClock(START)
    ex = Exporter.from_config(_config(), registry=CollectorRegistry(), clock=clock)
    _tick_all(ex, clock)
    clock.advance(timedelta(hours=1))
    ex.observe(TickResult("orders", error="boom", finished_at=clock.now()))
    _, body = ex.readiness()
    assert set(example) == set(body)
    assert set(example["not_ready"]["orders"]) == set(body["not_ready"]["orders"])
    assert example["not_ready"]["orders"]["state"] == body["not_ready"]["orders"]["state"]
    assert "/readyz" in section and "livenessProbe" in section and "/healthz" in section


def test_ready_after_sets_one_window_for_every_metric():
    """An operator whose probe should tolerate a slow source sets one window; zero or a
    negative one is a config error at its path."""
    import pytest

    from monitor.errors import ConfigError

    text = _config_text().replace("alerting:", "exporter: {ready_after: 30m}\nalerting:")
    assert set(ready_windows(parse_config(text, env={})).values()) == {1800.0}
    with pytest.raises(ConfigError) as err:
        parse_config(text.replace("30m", "0s"), env={})
    (problem,) = err.value.problems
    assert problem.path == "exporter.ready_after" and "must be positive" in problem.message
