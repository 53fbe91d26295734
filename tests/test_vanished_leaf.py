"""A channel whose rows stop (its tracking broke) under the default ``missing: skip``: the
total's alert must name that channel. Before, the root cause read only the rows polled, so the
one leaf that explains the drop was not there and the alert named nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.pipeline import Pipeline
from monitor.store import Store
from sources.base import PollRequest, Source, SourceConfig

T0 = datetime(2026, 1, 5, tzinfo=UTC)
STEP = timedelta(hours=1)
GONE = T0 + timedelta(days=10, hours=13)  # web stops sending rows from here on

CONFIG = """
store: "sqlite:///{db}"
sources:
  desk: {{type: demo}}
metrics:
  - name: contacts
    source: desk
    interval: 1h
    query: contacts
    timestamp: ts
    dimensions: [channel]
    value: {{sum: n}}
    labels: {{journey: support}}
alerting:
  receivers: [{{name: console, console: {{format: json}}}}]
"""

CHANNELS = {"web": 400.0, "app": 300.0, "phone": 150.0, "chat": 100.0}


class Desk(Source):
    """Contacts per hour and channel with a daily cycle and Poisson noise."""

    def __init__(self) -> None:
        super().__init__("desk", SourceConfig(type="demo"))

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        rows = []
        for ts in pd.date_range(request.since, request.until, freq=STEP, inclusive="left"):
            rng = np.random.default_rng(int(ts.timestamp()))
            daily = 1.0 + 0.5 * np.sin((ts.hour - 8) / 24 * 2 * np.pi)
            for channel, level in CHANNELS.items():
                if channel == "web" and ts >= GONE:
                    continue
                rows.append({"ts": ts, "channel": channel,
                             "n": int(rng.poisson(level * daily))})
        return pd.DataFrame(rows, columns=["ts", "channel", "n"])


def run_until(tmp_path, until: datetime) -> Store:
    cfg = parse_config(CONFIG.format(db=tmp_path / "s.db"), env={})
    store = Store.open(cfg.store.url)
    clock = FakeClock(T0 + STEP)
    p = Pipeline(cfg, store, clock=clock, sources={"desk": Desk()},
                 notifiers={"console": object()})  # type: ignore[dict-item] - never delivered
    while clock.now() < until:
        clock.advance(STEP)
        assert p.tick("contacts").ok
    p.close()
    return store


def test_a_channel_that_stopped_sending_rows_is_named_in_the_alert(tmp_path) -> None:
    store = run_until(tmp_path, GONE + 3 * STEP)
    anomalies = store.anomalies()
    total = anomalies[anomalies["series"] == 'contacts{journey="support"}']
    assert len(total) and total["ts"].min() == GONE  # the total's drop is alerted at once
    [incident] = store.incidents()
    [cause] = incident["summary"]["root_cause"]
    assert cause["at"] == GONE.isoformat() and cause["elements"] == [{"channel": "web"}]
    [part] = cause["contributions"]
    assert part["actual"] == 0.0 and 500 < part["expected"] < 700 and part["share"] > 0.8
    store.close()
