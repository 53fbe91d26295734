"""End to end: a YAML config with a SQL source on PostgreSQL holding CX rows, the monitor run
for ticks on a fake clock, anomalies and outbox rows in the store; a restart re-alerts nothing
and polls nothing twice."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.pipeline import Pipeline
from monitor.scheduler import replay
from monitor.store import Store
from sources.base import PollRequest, Source
from sources.sql import SqlSource
from tests.conftest import PG_URL, require_postgres

ANCHOR = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
SPIKE = ANCHOR + timedelta(days=16, hours=14)  # app/uk drop-off jumps for 3 hours
SPIKE_HOURS = 3


def funnel_rows(start: datetime, end: datetime) -> pd.DataFrame:
    """Hourly checkout sessions per channel/region with a daily cycle and binomial noise."""
    rng = np.random.default_rng(42)
    hours = pd.date_range(start, end, freq="1h", inclusive="left")
    rows = []
    for ts in hours:
        daily = 1 + 0.6 * np.sin((ts.hour - 8) / 24 * 2 * np.pi)
        for channel in ("app", "web"):
            for region in ("uk", "de"):
                started = int(rng.poisson(400 * daily))
                p = 0.30 if channel == "app" else 0.25
                if channel == "app" and region == "uk" and SPIKE <= ts < SPIKE + timedelta(
                    hours=SPIKE_HOURS
                ):
                    p = 0.60
                rows.append((ts.to_pydatetime(), channel, region, started,
                             int(rng.binomial(started, p))))
    return pd.DataFrame(rows, columns=["ts", "channel", "region", "started", "abandoned"])


@pytest.fixture()
def warehouse() -> Iterator[str]:
    """A schema on the real PostgreSQL server holding a ``funnel`` table."""
    require_postgres()
    schema = f"cx_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"create schema {schema}"))
        conn.execute(sa.text(
            f"create table {schema}.funnel (ts timestamptz not null, channel text, region text,"
            " started integer, abandoned integer)"
        ))
    funnel_rows(ANCHOR - timedelta(days=1), ANCHOR + timedelta(days=18)).to_sql(
        "funnel", engine, schema=schema, if_exists="append", index=False, chunksize=5000
    )
    try:
        yield schema
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop schema {schema} cascade"))
        engine.dispose()


class RecordingSource(Source):
    """Wraps a source and records every range it was asked for."""

    def __init__(self, inner: Source) -> None:
        super().__init__(inner.name, inner.config)
        self.inner = inner
        self.requests: list[PollRequest] = []

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        self.requests.append(request)
        return self.inner.fetch(request)

    def close(self) -> None:
        self.inner.close()


CONFIG = """
store: "${STORE_URL}"
sources:
  warehouse: {type: sql, url: "${WAREHOUSE_URL}"}
metrics:
  - name: checkout_dropoff_rate
    source: warehouse
    interval: 1h
    query: >
      select ts, channel, region, started, abandoned
      from ${SCHEMA}.funnel where ts >= :since and ts < :until
    timestamp: ts
    dimensions: [channel, region]
    value: {ratio: [abandoned, started]}
    labels: {journey: checkout, team: checkout-squad}
    direction: up
    min_change: 0.2
detectors:
  default: {type: robust_seasonal}
alerting:
  receivers: [{name: console, console: {format: json}}]
"""


def test_sql_source_to_outbox_with_restart(
    warehouse: str, store_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "cxmon.yaml"
    path.write_text(CONFIG)
    env = {"STORE_URL": store_url, "WAREHOUSE_URL": PG_URL, "SCHEMA": warehouse}
    cfg = load_config(path, env=env)
    store = Store.open(cfg.store.url)
    clock = FakeClock(ANCHOR + timedelta(hours=1))
    sent: list[dict] = []

    class Collect:
        def send(self, payload: dict) -> None:
            sent.append(payload)

    def pipeline() -> tuple[Pipeline, RecordingSource]:
        src = RecordingSource(SqlSource("warehouse", cfg.sources["warehouse"]))  # type: ignore[arg-type]
        return Pipeline(cfg, store, clock=clock, sources={"warehouse": src},
                        notifiers={"console": Collect()}), src  # type: ignore[dict-item]

    # first run: up to two hours into the spike, then "crash" (drop the pipeline)
    p1, src1 = pipeline()
    results = replay(p1, clock, SPIKE + timedelta(hours=2))
    assert all(r.ok for r in results)
    cursor = store.get_cursor("checkout_dropoff_rate")
    assert cursor == SPIKE + timedelta(hours=2)
    first = store.anomalies()
    assert len(first) > 0
    assert set(first["ts"]) <= {SPIKE, SPIKE + timedelta(hours=1)}  # nothing before the spike
    assert any('channel="app"' in s and 'region="uk"' in s for s in first["series"])
    outbox = store.outbox_counts()
    assert outbox["sent"] >= 1 and outbox["pending"] == 0
    assert sent[0]["status"] == "firing" and sent[0]["journey"] == "checkout"
    p1.close()

    # restart: a new pipeline on the same store continues from the cursor
    p2, src2 = pipeline()
    replay(p2, clock, SPIKE + timedelta(hours=8))
    assert src2.requests[0].since == cursor  # no bucket polled twice
    spans = [(r.since, r.until) for r in src1.requests + src2.requests]
    for (_, u1), (s2, _) in itertools.pairwise(spans):
        assert s2 == u1  # contiguous, non-overlapping polls across the restart
    after = store.anomalies()
    assert after["id"].is_unique
    assert set(first["id"]) <= set(after["id"])  # the first run's anomalies are kept
    flagged = sorted(set(after["ts"]))
    assert flagged and flagged[0] == SPIKE and flagged[-1] < SPIKE + timedelta(hours=SPIKE_HOURS)
    keys = [n.idempotency_key for n in store.notifications()]
    assert len(keys) == len(set(keys))
    statuses = [p["status"] for p in sent]
    assert statuses.count("firing") >= 1 and statuses[-1] == "resolved"
    assert len([p for p in sent if p["status"] == "firing" and not p["update"]]) == 1
    p2.close()
    store.close()
