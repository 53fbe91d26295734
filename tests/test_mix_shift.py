"""A drop-off rate that rose because traffic moved to the channel whose drop-off is always
higher, every channel's own rate unchanged (Simpson's paradox): the alert says it is a mix
shift and which channel's share of the volume grew. Before, the root cause (which compares
rates) rightly found no culprit, and the alert said nothing about why the total moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from alerts.blocks import render_message
from alerts.notifiers.console import mix_text, render_panel
from detectors.mixshift import mix_shift
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.pipeline import Pipeline
from monitor.store import Store
from sources.base import PollRequest, Source, SourceConfig

T0 = datetime(2026, 1, 5, tzinfo=UTC)
STEP = timedelta(hours=1)
SHIFT = T0 + timedelta(days=10, hours=13)  # traffic moves from the app to the web from here

CONFIG = """
store: "sqlite:///{db}"
sources:
  shop: {{type: demo}}
metrics:
  - name: dropoff
    source: shop
    interval: 1h
    query: funnel
    timestamp: ts
    dimensions: [channel]
    value: {{ratio: [abandoned, started]}}
    labels: {{journey: checkout}}
alerting:
  receivers: [{{name: console, console: {{format: json}}}}]
"""

RATE = {"app": 0.2, "web": 0.5}


class Shop(Source):
    """Checkout sessions per hour and channel: 80 % app before the shift, 30 % after (or,
    with ``app_gone``, no app rows at all after it: the app's tracking broke)."""

    def __init__(self, app_gone: bool = False) -> None:
        super().__init__("shop", SourceConfig(type="demo"))
        self.app_gone = app_gone

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        rows = []
        for ts in pd.date_range(request.since, request.until, freq=STEP, inclusive="left"):
            rng = np.random.default_rng(int(ts.timestamp()))
            app_share = 0.3 if ts >= SHIFT else 0.8
            for channel, share in (("app", app_share), ("web", 1.0 - app_share)):
                if self.app_gone and channel == "app" and ts >= SHIFT:
                    continue
                started = int(rng.poisson(2000 * share))
                rows.append({"ts": ts, "channel": channel, "started": started,
                             "abandoned": int(rng.binomial(started, RATE[channel]))})
        return pd.DataFrame(rows, columns=["ts", "channel", "started", "abandoned"])


def run(tmp_path, shop: Shop) -> Store:
    cfg = parse_config(CONFIG.format(db=tmp_path / "s.db"), env={})
    store = Store.open(cfg.store.url)
    clock = FakeClock(T0 + STEP)
    p = Pipeline(cfg, store, clock=clock, sources={"shop": shop},
                 notifiers={"console": object()})  # type: ignore[dict-item] - never delivered
    while clock.now() < SHIFT + 2 * STEP:
        clock.advance(STEP)
        assert p.tick("dropoff").ok
        p.flush_groups()  # the delivery job's first half: due alert groups into the outbox
    p.close()
    return store


def test_a_rate_moved_by_the_volume_mix_is_called_a_mix_shift(tmp_path) -> None:
    store = run(tmp_path, Shop())
    anomalies = store.anomalies()
    total = anomalies[anomalies["series"] == 'dropoff{journey="checkout"}']
    assert len(total) and total["ts"].min() == SHIFT
    assert not anomalies["series"].str.contains("channel").any()  # no channel's rate moved
    [incident] = store.incidents()
    [cause] = incident["summary"]["root_cause"]
    assert cause["elements"] == [] and cause["at"] == SHIFT.isoformat()
    mix = cause["mix"]
    assert (mix["dimension"], mix["value"]) == ("channel", "web")
    assert mix["share_usual"] == pytest.approx(0.2, abs=0.03)
    assert mix["share_now"] == pytest.approx(0.7, abs=0.03)
    assert mix["rate_usual"] == pytest.approx(0.5, abs=0.03)
    assert mix["portion"] > 0.8
    payload = store.notifications()[0].payload  # what the receivers get
    assert payload["root_cause"][0]["mix"] == {**mix, "unit": "percent"}  # a ratio: 71%
    text = "\n".join(b["text"]["text"] for b in render_message(payload)["blocks"]
                     if b["type"] == "section" and "text" in b)
    said = (f"mix shift: channel=web went from {mix['share_usual']:.0%} to "
            f"{mix['share_now']:.0%} of the volume, and its usual rate is")
    assert f"• *dropoff*: {said}" in text
    console = Console(width=200, record=True)
    console.print(render_panel(payload))
    assert f"root cause · dropoff: {said}" in console.export_text()
    store.close()


def test_a_channel_that_stopped_sending_rows_shows_as_a_mix_shift(tmp_path) -> None:
    """The app's rows stop (default ``missing: skip``): the total drop-off is now the web's
    0.5. The app has no rate to judge, but the volume it lost is named."""
    store = run(tmp_path, Shop(app_gone=True))
    anomalies = store.anomalies()
    total = anomalies[anomalies["series"] == 'dropoff{journey="checkout"}']
    assert len(total) and total["ts"].min() == SHIFT
    [incident] = store.incidents()
    mix = next(rc["mix"] for rc in incident["summary"]["root_cause"] if rc.get("mix"))
    assert (mix["dimension"], mix["value"]) == ("channel", "app")
    assert mix["share_usual"] == pytest.approx(0.8, abs=0.03) and mix["share_now"] == 0.0
    assert mix["rate_usual"] == pytest.approx(0.2, abs=0.03) and mix["portion"] > 0.8
    store.close()


def test_no_mix_shift_when_a_part_rate_moved() -> None:
    """The same volumes, but the web's own rate doubled: that is the root cause's finding,
    not a mix shift."""
    parts = pd.DataFrame({"channel": ["app", "web"]})
    assert mix_shift(parts, ["channel"], numerator=[160.0, 200.0], denominator=[800.0, 200.0],
                     expected_rate=[0.2, 0.5], usual_volume=[800.0, 200.0]) is None
    # and without a usual volume there is nothing to compare with
    assert mix_shift(parts, ["channel"], numerator=[60.0, 350.0], denominator=[300.0, 700.0],
                     expected_rate=[0.2, 0.5], usual_volume=[0.0, 0.0]) is None


def test_traffic_that_moved_to_two_channels_names_both() -> None:
    """The app lost half its share to the web *and* to iOS, whose drop-offs are both high:
    naming only the web would send its owners after half the story."""
    parts = pd.DataFrame({"channel": ["app", "web", "ios", "kiosk"]})
    usual = [800.0, 100.0, 80.0, 20.0]
    now = [400.0, 300.0, 280.0, 20.0]
    rate = [0.2, 0.5, 0.45, 0.3]
    found = mix_shift(parts, ["channel"], numerator=np.multiply(now, rate), denominator=now,
                      expected_rate=rate, usual_volume=usual)
    assert found is not None and (found.dimension, found.value) == ("channel", "web")
    assert [a["value"] for a in found.also] == ["ios"]  # the kiosk kept its share: not named
    assert found.also[0]["share_usual"] == pytest.approx(0.08)
    assert found.also[0]["share_now"] == pytest.approx(0.28)
    assert found.to_dict()["also"][0]["rate_usual"] == pytest.approx(0.45)
    text = mix_text(found.to_dict())
    assert "channel=web went from 10% to 30%" in text and "also channel=ios 8% → 28%" in text
    # one channel carrying the move alone names only that one
    now = [400.0, 560.0, 20.0, 20.0]
    alone = mix_shift(parts, ["channel"], numerator=np.multiply(now, rate), denominator=now,
                      expected_rate=rate, usual_volume=[800.0, 160.0, 20.0, 20.0])
    assert alone is not None and alone.value == "web" and alone.also == ()
    assert "also" not in alone.to_dict() and "also" not in mix_text(alone.to_dict())


def test_the_usual_volume_is_the_same_time_of_week_when_weeks_are_stored(tmp_path) -> None:
    """On Saturdays the app carries 70 % of the sessions, on weekdays 20 %: a Saturday must be
    compared with earlier Saturdays, or every weekend anomaly would read as a mix shift."""
    from monitor.model import Series

    cfg = parse_config(CONFIG.format(db=tmp_path / "s.db"), env={})
    store = Store.open(cfg.store.url)
    leaves = {ch: Series("dropoff", {"journey": "checkout", "channel": ch}, ("channel",))
              for ch in ("app", "web")}
    saturday = datetime(2026, 2, 7, 14, tzinfo=UTC)
    rows = []
    for day in range(1, 29):
        ts = saturday - timedelta(days=day)
        app = 700.0 if ts.weekday() == 5 else 200.0
        for ch, started in (("app", app), ("web", 1000.0 - app)):
            rows.append({"timestamp": pd.Timestamp(ts), "series": leaves[ch].key,
                         "value": 0.3, "numerator": 0.3 * started, "denominator": started})
    with store.transaction() as tx:
        tx.ensure_series(list(leaves.values()))
        tx.upsert_points(pd.DataFrame(rows))
    p = Pipeline(cfg, store, clock=FakeClock(saturday), sources={"shop": Shop()},
                 notifiers={"console": object()})  # type: ignore[dict-item]
    usual = p._usual_volume(cfg.metrics[0], None)
    assert usual is not None
    keys = [s.key for s in leaves.values()]
    assert usual(pd.Timestamp(saturday), keys) == {leaves["app"].key: 700.0,
                                                   leaves["web"].key: 300.0}
    tuesday = saturday + timedelta(days=3)
    assert usual(pd.Timestamp(tuesday), keys) == {leaves["app"].key: 200.0,
                                                  leaves["web"].key: 800.0}
    p.close()
    store.close()
