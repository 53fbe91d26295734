"""Per-series gauges expire: a series that stopped arriving leaves /metrics (fake clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from dashboards.exporter import BLOCK, Exporter, SeriesGauges, series_ttls
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.pipeline import TickResult

LIVE = 'csat{channel="web",journey="support"}'
STOPPED = 'csat{channel="app",journey="support"}'
OTHER = 'checkout_dropoff_rate{journey="checkout"}'
START = datetime(2026, 1, 5, tzinfo=UTC)


def _scores(keys, value=0.3, severity=30.0):
    n = len(keys)
    return pd.DataFrame({
        "timestamp": pd.Timestamp("2026-01-05", tz="UTC"), "series": keys,
        "value": np.full(n, value), "expected": 0.25, "lower": 0.2, "upper": 0.3,
        "score": 0.9, "severity": severity,
    })


def _series(text: str) -> dict:
    """(gauge, series key labels) -> value, for the per-series gauges only."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text) for s in fam.samples
        if s.name.startswith("cxmon_series_")
    }


def _keys(text: str) -> set[str]:
    """The ``channel`` of every csat series on /metrics."""
    return {dict(labels)["channel"] for _, labels in _series(text)
            if ("cx_metric", "csat") in labels}


def _config(extra: str = ""):
    return parse_config(f"""
store: sqlite://
sources:
  shop: {{type: demo, seed: 7, anchor: "2026-01-05T00:00:00Z"}}
metrics:
  - {{name: csat, source: shop, query: csat, interval: 5m, timestamp: ts,
      value: {{mean: [rating_sum, responses]}}}}
  - {{name: checkout_dropoff_rate, source: shop, query: checkout, interval: 1h, delay: 10m,
      timestamp: ts, value: {{ratio: [abandoned, started]}}}}
alerting:
  route: {{receiver: console}}
  receivers: [{{name: console, console: {{}}}}]
{extra}""", env={})


def test_a_stopped_series_leaves_metrics_and_a_live_one_stays():
    clock = FakeClock(START)
    ex = Exporter(registry=CollectorRegistry(), series_ttl=900, clock=clock)
    ex.observe(TickResult("csat", scores=_scores([LIVE, STOPPED], severity=80)))
    assert _keys(ex.render().decode()) == {"web", "app"}
    for _ in range(3):  # only LIVE keeps arriving, every 5 minutes
        clock.advance(timedelta(minutes=5))
        ex.observe(TickResult("csat", scores=_scores([LIVE])))
    # STOPPED got its last point exactly 15 min ago: not stale yet (ttl is "more than")
    assert _keys(ex.render().decode()) == {"web", "app"}
    clock.advance(timedelta(seconds=1))  # no tick: a scrape alone expires it
    text = ex.render().decode()
    assert _keys(text) == {"web"}
    assert not any(("channel", "app") in k[1] for k in _series(text))  # every gauge, gone
    assert 'cxmon_exporter_series 1.0' in text
    assert ex.health()["series"] == 1
    # a series that comes back is exported again, with its new point
    ex.observe(TickResult("csat", scores=_scores([STOPPED], value=0.7)))
    s = _series(ex.render().decode())
    assert s[("cxmon_series_value",
              (("channel", "app"), ("cx_metric", "csat"), ("journey", "support")))] == 0.7


def test_expiry_over_http_scrape():
    clock = FakeClock(START)
    ex = Exporter(registry=CollectorRegistry(), series_ttl={"csat": 60}, clock=clock)
    ex.observe(TickResult("csat", scores=_scores([LIVE])))
    ex.observe(TickResult("checkout_dropoff_rate", scores=_scores([OTHER])))
    port = ex.start("127.0.0.1", 0)
    try:
        clock.advance(timedelta(minutes=2))
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        ex.stop()
    metrics = {dict(k[1])["cx_metric"] for k in _series(text)}
    assert metrics == {"checkout_dropoff_rate"}  # not in the ttl mapping: never expires


def test_no_ttl_keeps_series_forever():
    clock = FakeClock(START)
    ex = Exporter(registry=CollectorRegistry(), clock=clock)
    ex.observe(TickResult("csat", scores=_scores([LIVE])))
    clock.advance(timedelta(days=400))
    assert _keys(ex.render().decode()) == {"web"}


def test_compaction_keeps_values_across_blocks():
    g = SeriesGauges(ttl=10)
    n = BLOCK * 2 + 17
    keys = [f'm{{i="{i}"}}' for i in range(n)]
    g.update(((k, (i, i, i, i, 0.5, 1)) for i, k in enumerate(keys)), now=0)
    g.update(((k, (i + 0.5, i, i, i, 0.5, 1)) for i, k in enumerate(keys) if i % 3 == 0), now=8)
    assert g.expire(now=9) == []  # nothing due: the earliest deadline was not reached
    gone = g.expire(now=11)
    assert sorted(gone) == sorted(k for i, k in enumerate(keys) if i % 3)
    assert len(g) == len([i for i in range(n) if i % 3 == 0])
    by_i = {s.labels["i"]: s.value
            for fam in text_string_to_metric_families(g.render().decode())
            for s in fam.samples if s.name == "cxmon_series_value"}
    assert by_i == {str(i): i + 0.5 for i in range(n) if i % 3 == 0}
    # collect() (the regular collector path) agrees with the text
    assert {s.labels["i"]: s.value for fam in g.collect() for s in fam.samples
            if s.name == "cxmon_series_value"} == by_i
    # updates after a compaction land on the right series
    g.update([(keys[3], (42, 0, 0, 0, 0, 0)), ('m{i="new"}', (7, 0, 0, 0, 0, 0))], now=12)
    vals = {s.labels["i"]: s.value
            for fam in text_string_to_metric_families(g.render().decode())
            for s in fam.samples if s.name == "cxmon_series_value"}
    assert vals["3"] == 42 and vals["new"] == 7 and vals["0"] == 0.5
    assert sorted(g.expire(now=19)) == sorted(k for i, k in enumerate(keys)
                                              if i % 3 == 0 and i != 3)
    assert g.render().count(b"cxmon_series_value{") == len(g) == 2
    assert sorted(g.expire(now=22.5)) == ['m{i="3"}', 'm{i="new"}']
    assert len(g) == 0 and g.render() == b""

def test_default_ttl_is_three_intervals_plus_delay_and_configurable():
    assert series_ttls(_config()) == {"csat": 900.0, "checkout_dropoff_rate": 3 * 3600 + 600.0}
    cfg = _config("exporter: {series_ttl: 2h}")
    assert series_ttls(cfg) == {"csat": 7200.0, "checkout_dropoff_rate": 7200.0}
    ex = Exporter.from_config(_config("exporter: {series_ttl: 0s}"), registry=CollectorRegistry())
    assert ex.series.ttl_of("csat") == float("inf")  # 0s: never expire
    with pytest.raises(ConfigError, match="series_ttl"):
        _config("exporter: {series_ttl: soon}")


def test_telemetry_expires_with_its_clock():
    from dashboards.telemetry import Telemetry

    clock = FakeClock(START)
    tel = Telemetry(_config(), registry=CollectorRegistry(), clock=clock)
    tel.on_tick(TickResult("csat", scores=_scores([LIVE, STOPPED])))
    clock.advance(timedelta(minutes=10))
    tel.on_tick(TickResult("csat", scores=_scores([LIVE])))
    clock.advance(timedelta(minutes=6))  # STOPPED: 16 min > 3 x 5m; LIVE: 6 min
    assert _keys(tel.exporter.render().decode()) == {"web"}
