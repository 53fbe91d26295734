"""Sources in the tick pipeline: the outage acceptance test (no gap after recovery, one "no
data" alert, resolved after), the late-data window (corrections upserted, never re-detected),
staleness settings and the per-source Prometheus metrics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.pipeline import Pipeline
from monitor.staleness import StalenessRule
from monitor.store import Store
from sources.base import PollRequest, RetriableSourceError, Source, SourceConfig
from sources.http import SdkSource
from sources.metrics import SourceMetrics

T0 = datetime(2026, 1, 5, tzinfo=UTC)
STEP = timedelta(minutes=5)

CONFIG = """
store: "sqlite:///{db}"
sources:
  shop: {{type: demo}}
metrics:
  - name: orders
    source: shop
    interval: 5m
    query: orders
    timestamp: ts
    dimensions: [channel]
    value: count
    labels: {{journey: checkout}}
    direction: up
    min_change: 10
    {extra}
alerting:
  resolve_after: 15m
  receivers: [{{name: console, console: {{format: json}}}}]
"""


class Shop(Source):
    """Orders per 5 minutes for two channels; can go down; can revise the past."""

    def __init__(self) -> None:
        super().__init__("shop", SourceConfig(type="demo"))
        self.down = False
        self.revised: dict[datetime, int] = {}
        self.held_back: set[datetime] = set()  # buckets whose rows have not arrived yet
        self.requests: list[PollRequest] = []

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        self.requests.append(request)
        if self.down:
            raise RetriableSourceError("source shop: HTTP 503 from shop.example/api")
        stamps = pd.date_range(request.since, request.until, freq=STEP, inclusive="left")
        rows = []
        for ts in stamps:
            if ts.to_pydatetime() in self.held_back:
                continue
            for i, channel in enumerate(("app", "web")):
                base = 100 + 10 * i + int(ts.minute / 5) % 3
                rows.append({"ts": ts, "channel": channel,
                             "count": self.revised.get(ts.to_pydatetime(), base)})
        return pd.DataFrame(rows, columns=["ts", "channel", "count"])


def setup(tmp_path, extra: str = "", metrics: SourceMetrics | None = None):
    cfg = parse_config(CONFIG.format(db=tmp_path / "s.db", extra=extra), env={})
    store = Store.open(cfg.store.url)
    clock = FakeClock(T0 + STEP)
    shop = Shop()
    p = Pipeline(cfg, store, clock=clock, sources={"shop": shop},
                 notifiers={"console": object()},  # type: ignore[dict-item] - never delivered
                 source_metrics=metrics)
    return p, store, clock, shop


def run(p: Pipeline, clock: FakeClock, until: datetime) -> list:
    out = []
    while clock.now() < until:
        clock.advance(STEP)
        out.append(p.tick("orders"))
        p.flush_groups()  # the delivery job's first half: due alert groups into the outbox
    return out


def test_outage_then_recovery_no_gap_one_no_data_alert_resolved(tmp_path) -> None:
    registry = CollectorRegistry()
    p, store, clock, shop = setup(tmp_path, metrics=SourceMetrics(registry))
    run(p, clock, T0 + timedelta(minutes=30))
    shop.down = True
    outage = run(p, clock, T0 + timedelta(hours=1))  # six intervals down
    assert all(r.error or r.skipped for r in outage)
    assert registry.get_sample_value("cxmon_source_no_data", {"source": "shop",
                                                              "cx_metric": "orders"}) == 1
    shop.down = False
    after = run(p, clock, T0 + timedelta(hours=1, minutes=45))
    first = next(r for r in after if not r.skipped)  # once the backoff has passed
    assert first.ok and first.since == T0 + timedelta(minutes=30)  # the missed range at once
    assert first.until - first.since > 6 * STEP

    # no gap: every 5-minute bucket of the total series is stored
    points = store.load_points(metric="orders")
    total = points[points["series"] == 'orders{journey="checkout"}']
    expected = pd.date_range(T0 + STEP, clock.now(), freq=STEP, inclusive="left", tz=UTC)
    assert list(total["timestamp"]) == list(expected)

    # "no data" anomalies only during the outage, in one incident, notified once, resolved
    anomalies = store.anomalies()
    nodata = anomalies[anomalies["kind"] == "no_data"]
    assert len(nodata) >= 1
    assert nodata["ts"].min() >= T0 + timedelta(minutes=30)
    assert nodata["ts"].max() < T0 + timedelta(hours=1)
    assert (anomalies["kind"] == "no_data").all()  # nothing else fired
    incidents = store.incidents()
    assert len(incidents) == 1 and incidents[0]["status"] == "resolved"
    keys = [n.idempotency_key for n in store.notifications()]
    assert sum("|opened|" in k for k in keys) == 1
    assert sum("|resolved|" in k for k in keys) == 1
    assert len(keys) == 2
    assert registry.get_sample_value("cxmon_source_no_data", {"source": "shop",
                                                              "cx_metric": "orders"}) == 0
    assert registry.get_sample_value("cxmon_source_polls_total", {
        "source": "shop", "cx_metric": "orders", "outcome": "error"}) >= 3
    assert registry.get_sample_value("cxmon_source_rows_total", {
        "source": "shop", "cx_metric": "orders"}) == 2 * len(expected)
    p.close()
    store.close()


def test_a_long_retry_after_holds_the_next_polls_back(tmp_path, caplog) -> None:
    """A 429 asking for an hour (longer than the poll's max_wait) is not polled again
    within that hour: the pipeline's own backoff (5, 10, 20 minutes) would hammer a
    rate-limited API and extend its lockout."""

    class Limited(Shop):
        def fetch(self, request: PollRequest) -> pd.DataFrame:
            if self.down:
                self.requests.append(request)
                raise RetriableSourceError("source shop: HTTP 429; server asked to wait "
                                           "3600s", retry_after=3600)
            return super().fetch(request)

    data = yaml.safe_load(CONFIG.format(db=tmp_path / "s.db", extra=""))
    data["metrics"].append({**data["metrics"][0], "name": "orders_web"})
    cfg = parse_config(yaml.safe_dump(data), env={})
    store = Store.open(cfg.store.url)
    clock = FakeClock(T0 + STEP)
    shop = Limited()
    p = Pipeline(cfg, store, clock=clock, sources={"shop": shop},
                 notifiers={"console": object()})  # type: ignore[dict-item]
    run(p, clock, T0 + timedelta(minutes=30))
    shop.down, shop.requests = True, []
    limited_at = clock.now() + STEP
    results = run(p, clock, limited_at + timedelta(minutes=55))
    assert len(shop.requests) == 1  # the 429, then nothing for the hour
    assert all(r.skipped.startswith("backing off") for r in results[1:])
    # a rate limit is the account's: the source's other metric waits too
    with caplog.at_level(logging.DEBUG, logger="monitor.pipeline"):
        skipped = p.tick("orders_web")
    assert skipped.skipped and "source shop asked to wait" in skipped.skipped
    held = limited_at + timedelta(seconds=3600)  # the 429's Retry-After, from its tick
    assert [(r.levelno, r.getMessage()) for r in caplog.records if "skipped" in r.getMessage()] \
        == [(logging.DEBUG, "tick of orders_web skipped: source shop asked to wait "
                            f"(Retry-After), retried from {held:%Y-%m-%d %H:%M:%S} UTC")]
    assert len(shop.requests) == 1
    shop.down = False
    after = run(p, clock, limited_at + timedelta(minutes=65))
    assert any(r.ok and not r.skipped for r in after)
    p.close()
    store.close()


def test_each_tick_skipped_while_backing_off_is_logged_at_debug(tmp_path, caplog) -> None:
    """Skipped ticks were counted (``cxmon_ticks_total{outcome="skipped"}``) but never
    logged: between two failures minutes apart, even ``--log-level debug`` showed nothing, so
    a stalled scheduler and a backoff looked alike. One DEBUG line per skipped tick, naming
    the metric and when it is retried; none once it ticks again."""
    p, store, clock, shop = setup(tmp_path)
    run(p, clock, T0 + timedelta(minutes=30))
    shop.down = True
    with caplog.at_level(logging.DEBUG, logger="monitor.pipeline"):
        failed = run(p, clock, T0 + timedelta(minutes=40))  # the 2nd failure backs off
        retry_at = p._health["orders"].retry_at
        assert retry_at is not None and retry_at > clock.now() + STEP
        skipped = run(p, clock, clock.now() + STEP)
        shop.down = False
        after = run(p, clock, retry_at + STEP)
    p.close()
    store.close()
    assert all(r.error for r in failed) and [bool(r.skipped) for r in skipped] == [True]
    assert after and all(r.ok and not r.skipped for r in after)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if "skipped" in r.getMessage()]
    assert lines == [(logging.DEBUG, "tick of orders skipped: backing off after 2 failure(s), "
                                     f"retried from {retry_at:%Y-%m-%d %H:%M:%S} UTC")]


class QuietShop(Shop):
    """A Shop whose rows stop at ``cutoff`` (the whole metric goes quiet, no error), and
    whose ``missing`` channels send nothing."""

    cutoff: datetime | None = None
    missing: frozenset[str] = frozenset()

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        df = super().fetch(request)
        if self.cutoff is not None:
            df = df[pd.to_datetime(df["ts"], utc=True) < pd.Timestamp(self.cutoff)]
        return df[~df["channel"].isin(self.missing)]


def test_a_silent_metric_is_one_no_data_anomaly_not_one_per_series(tmp_path) -> None:
    p, store, clock, _ = setup(tmp_path)
    shop = QuietShop()
    p.sources["shop"] = shop  # type: ignore[index]
    run(p, clock, T0 + timedelta(minutes=30))
    shop.cutoff = clock.now() + 2 * STEP
    clock.advance(8 * STEP)  # one tick (a catch-up, a first tick) whose rows stop early
    silence = [a for a in p.tick("orders").anomalies if a.kind == "no_data"]
    assert [a.last_seen for a in silence] == [shop.cutoff]  # end of the last bucket with rows
    p.flush_groups()
    nodata = store.anomalies()
    nodata = nodata[nodata["kind"] == "no_data"]
    assert len(nodata) >= 1 and set(nodata["detector"]) == {"no_data"}  # the metric's rule
    web_last = shop.cutoff
    shop.cutoff, shop.missing = None, frozenset({"web"})  # back, but web stays silent
    ticks = run(p, clock, T0 + timedelta(hours=1, minutes=30))
    nodata = store.anomalies()
    per_series = nodata[(nodata["kind"] == "no_data") & (nodata["detector"] != "no_data")]
    assert set(per_series["series"]) == {'orders{channel="web",journey="checkout"}'}
    stopped = [a for r in ticks for a in r.anomalies if a.kind == "no_data"]
    assert stopped and {a.last_seen for a in stopped} == {web_last}
    p.close()
    store.close()


def test_a_metric_that_never_had_a_row_is_warned_about_once(tmp_path, caplog) -> None:
    """No stored point and no row (an empty export, a wrong query): the staleness rule has
    nothing to count from, so the tick says so, once."""
    caplog.set_level(logging.WARNING, logger="monitor.pipeline")
    p, store, clock, _ = setup(tmp_path)
    shop = QuietShop()
    shop.cutoff = T0
    p.sources["shop"] = shop  # type: ignore[index]
    run(p, clock, T0 + timedelta(minutes=20))
    said = [r.getMessage() for r in caplog.records if "none stored before" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("orders: no rows from source shop")
    p.close()
    store.close()


def test_rows_the_source_dropped_are_recorded_with_the_tick(tmp_path) -> None:
    """A files source drops malformed lines itself; the tick's rejected counts (log line,
    ticks table) must show them, as the README says of every bad row."""
    from collections import Counter

    class DroppingShop(Shop):
        def __init__(self) -> None:
            super().__init__()
            self.skipped: Counter[str] = Counter()

        def fetch(self, request: PollRequest) -> pd.DataFrame:
            self.skipped["bad_line"] += 2
            return super().fetch(request)

    p, store, clock, _ = setup(tmp_path)
    p.sources["shop"] = DroppingShop()  # type: ignore[index]
    result = run(p, clock, T0 + 2 * STEP)[-1]
    assert result.rejected == {"bad_line": 2}
    assert store.ticks("orders", limit=1)[0]["rejected"] == {"bad_line": 2}
    p.close()
    store.close()


def test_no_data_after_zero_disables_staleness(tmp_path) -> None:
    p, store, clock, shop = setup(tmp_path, extra="no_data_after: 0s")
    run(p, clock, T0 + timedelta(minutes=20))
    shop.down = True
    run(p, clock, T0 + timedelta(hours=1))
    assert store.anomalies().empty
    store.close()


def test_staleness_rule_defaults_to_three_intervals() -> None:
    cfg = parse_config(CONFIG.format(db="x", extra=""), env={})
    rule = StalenessRule.for_metric(cfg.metrics[0])
    assert rule.timeout == 3 * STEP
    assert not rule.is_stale(None, T0)  # never had data: a new metric, not an outage
    assert not rule.is_stale(T0, T0 + 2 * STEP)
    assert rule.is_stale(T0, T0 + 3 * STEP)
    a = rule.anomaly(T0, T0 + 4 * STEP)
    assert a.kind == "no_data" and a.value == 4.0 and a.labels == {"journey": "checkout"}


def test_late_window_upserts_corrections_without_redetecting(tmp_path) -> None:
    p, store, clock, shop = setup(tmp_path, extra="late_window: 15m")
    run(p, clock, T0 + timedelta(minutes=30))
    late_bucket = T0 + timedelta(minutes=30) - 2 * STEP
    shop.revised[late_bucket] = 100_000  # a huge correction of an already-detected bucket
    clock.advance(STEP)
    result = p.tick("orders")
    assert result.ok
    last = shop.requests[-1]
    assert last.since == T0 + timedelta(minutes=30) - 3 * STEP  # cursor - late_window
    assert last.until == T0 + timedelta(minutes=30) + STEP
    points = store.load_points(metric="orders", start=late_bucket, end=late_bucket + STEP)
    app = points[points["series"] == 'orders{channel="app",journey="checkout"}']
    assert app["value"].tolist() == [100_000.0]
    # re-polled buckets are stored, never scored again: no anomaly, no alert for them
    assert store.anomalies().empty
    assert result.anomalies == []
    assert result.scores is None or set(result.scores["timestamp"]) == {
        pd.Timestamp(T0 + timedelta(minutes=30))}
    store.close()


def test_late_rows_for_scored_buckets_are_counted_and_warned_about(tmp_path, caplog) -> None:
    """A bucket that had no rows when it was scored and gets them later was never seen by
    the detectors: the tick counts it, warns with the delay that would have scored it, and
    the exporter shows it. A corrected bucket is counted quietly (late_window's job)."""
    from dashboards.exporter import Exporter

    caplog.set_level(logging.INFO, logger="monitor.pipeline")
    p, store, clock, shop = setup(tmp_path, extra="late_window: 15m")
    hidden, fixed = T0 + timedelta(minutes=20), T0 + timedelta(minutes=15)
    shop.held_back.add(hidden)
    run(p, clock, T0 + timedelta(minutes=30))
    n_series = store.load_points(metric="orders", start=fixed, end=fixed + STEP)["series"].nunique()
    assert store.load_points(metric="orders", start=hidden, end=hidden + STEP).empty
    shop.held_back.clear()
    shop.revised[fixed] = 500
    clock.advance(STEP)
    result = p.tick("orders")
    assert result.ok
    assert (result.late.new, result.late.corrected) == (n_series, n_series)
    assert result.late.oldest_new == hidden
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
              and "warming up" not in r.getMessage()]  # the new default detector learns a week
    assert any(f"{n_series} buckets (series x interval) got their first rows after they were "
               "scored, up to 10m late" in m and "set delay: 10m or more" in m for m in warned)
    assert len(warned) == 1  # earlier ticks re-polled buckets from before monitoring: quiet
    assert not store.load_points(metric="orders", start=hidden, end=hidden + STEP).empty
    exporter = Exporter(registry=CollectorRegistry())
    exporter.observe(result)
    get = exporter.registry.get_sample_value
    assert get("cxmon_late_buckets_total", {"cx_metric": "orders", "kind": "new"}) == n_series
    assert get("cxmon_late_buckets_total",
               {"cx_metric": "orders", "kind": "corrected"}) == n_series
    # the next tick re-polls the same buckets, now stored: nothing new, nothing warned
    caplog.clear()
    clock.advance(STEP)
    again = p.tick("orders")
    assert (again.late.new, again.late.corrected) == (0, 0)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
    store.close()


def test_first_tick_ignores_late_window(tmp_path) -> None:
    p, _store, clock, shop = setup(tmp_path, extra="late_window: 1h")
    clock.advance(STEP)
    assert p.tick("orders").ok
    assert shop.requests[0].until - shop.requests[0].since == STEP


@pytest.mark.parametrize("bad", ["late_window: -5m", "no_data_after: soon"])
def test_bad_source_settings_are_config_errors(bad: str) -> None:
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG.format(db="x", extra=bad), env={})
    assert info.value.problems[0].path.startswith("metrics[0].")


def test_source_metrics_count_http_retries_and_skips() -> None:
    registry = CollectorRegistry()
    m = SourceMetrics(registry)

    fake = SimpleNamespace(skipped={"bad_record": 2},
                           _http=SimpleNamespace(requests=5, retries=2))
    result = SimpleNamespace(metric="m", skipped=None, error=None, rows_in=3,
                             rejected={"negative": 1})
    m.observe("api", fake, result, last_data_end=T0)  # type: ignore[arg-type]
    m.observe("api", fake, result)  # type: ignore[arg-type]  # same totals: not counted twice
    get = registry.get_sample_value
    assert get("cxmon_source_http_requests_total", {"source": "api"}) == 5
    assert get("cxmon_source_http_retries_total", {"source": "api"}) == 2
    assert get("cxmon_source_records_skipped_total", {"source": "api", "reason": "bad_record"}) == 2
    assert get("cxmon_source_rows_total", {"source": "api", "cx_metric": "m"}) == 6
    assert get("cxmon_source_rows_rejected_total", {"source": "api", "cx_metric": "m",
                                                    "reason": "negative"}) == 2
    assert get("cxmon_source_last_data_timestamp_seconds", {"source": "api", "cx_metric": "m"}) \
        == T0.timestamp()
    assert np.isfinite(get("cxmon_source_polls_total", {"source": "api", "cx_metric": "m",
                                                         "outcome": "ok"}))


def test_http_request_counters_exist_only_for_http_based_sources(tmp_path) -> None:
    """A SQL (or files, demo) source exported ``cxmon_source_http_requests_total`` and
    ``..._retries_total`` at 0 for ever: series that read as "no traffic" for a source that
    never speaks HTTP. HTTP sources get them, at 0 before their client is created."""
    import httpx

    from sources.prometheus import PrometheusSource, PrometheusSourceConfig
    from sources.sql import SqlSource, SqlSourceConfig

    def prom(name: str) -> PrometheusSource:
        body = {"status": "success", "data": {"resultType": "matrix", "result": []}}
        return PrometheusSource(
            name, PrometheusSourceConfig(type="prometheus", base_url="http://prom:9090",
                                         step="1h"),
            sleep=lambda _s: None,
            transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body)))

    polled, idle = prom("prom"), prom("prom_idle")
    polled.fetch(PollRequest("queue", T0, T0 + timedelta(hours=2), "sum(x)", {}))
    sources = {"warehouse": SqlSource("warehouse", SqlSourceConfig(
                   type="sql", url=f"sqlite:///{tmp_path / 'kpi.db'}")),
               "prom": polled, "prom_idle": idle}
    registry = CollectorRegistry()
    m = SourceMetrics(registry)
    for name, source in sources.items():
        result = SimpleNamespace(metric=f"m_{name}", skipped=None, error=None, rows_in=0,
                                 rejected={})
        m.observe(name, source, result)  # type: ignore[arg-type]
    for family in ("cxmon_source_http_requests", "cxmon_source_http_retries"):
        [fam] = [f for f in registry.collect() if f.name == family]
        by_source = {s.labels["source"]: s.value for s in fam.samples
                     if s.name.endswith("_total")}
        want = {"prom": 1.0, "prom_idle": 0.0} if family.endswith("requests") else \
            {"prom": 0.0, "prom_idle": 0.0}
        assert by_source == want, family
    # the SQL source still gets its per-source families
    assert registry.get_sample_value("cxmon_source_polls_total", {
        "source": "warehouse", "cx_metric": "m_warehouse", "outcome": "empty"}) == 1


class Events(Source):
    """One row per event: three identical rows per bucket for app, two for web."""

    def __init__(self) -> None:
        super().__init__("shop", SourceConfig(type="demo"))
        self.requests: list[PollRequest] = []

    def fetch(self, request: PollRequest) -> pd.DataFrame:
        self.requests.append(request)
        stamps = pd.date_range(request.since, request.until, freq=STEP, inclusive="left")
        rows = [{"ts": ts + timedelta(minutes=1), "channel": channel, "count": 1}
                for ts in stamps for channel, n in (("app", 3), ("web", 2)) for _ in range(n)]
        return pd.DataFrame(rows, columns=["ts", "channel", "count"])


def test_identical_event_rows_add_up_and_late_window_repolls_do_not_double_count(
        tmp_path) -> None:
    """Rows are summed, identical or not; a re-polled bucket replaces the stored point, so
    overlapping polls (late_window) never count an event twice."""
    cfg = parse_config(CONFIG.format(db=tmp_path / "s.db", extra="late_window: 15m"), env={})
    store = Store.open(cfg.store.url)
    clock = FakeClock(T0 + STEP)
    events = Events()
    p = Pipeline(cfg, store, clock=clock, sources={"shop": events},
                 notifiers={"console": object()})  # type: ignore[dict-item]
    results = run(p, clock, T0 + timedelta(minutes=40))
    assert all(r.ok and not r.rejected for r in results)
    assert any(r.since - req.since == 3 * STEP  # later polls overlap the last 15 minutes
               for r, req in zip(results, events.requests, strict=True) if r.since)
    points = store.load_points(metric="orders")
    by_series = points.groupby("series")["value"]
    assert set(by_series.max()) == set(by_series.min())  # every bucket the same
    assert by_series.max().to_dict() == {
        'orders{journey="checkout"}': 5.0,
        'orders{channel="app",journey="checkout"}': 3.0,
        'orders{channel="web",journey="checkout"}': 2.0,
    }
    p.close()
    store.close()


def test_an_incident_over_before_a_catch_up_tick_is_still_told(tmp_path) -> None:
    """cxmon was down while a spike came and went: the catch-up tick opens and resolves the
    incident at once; it must still reach the outbox (once, marked late), not vanish."""
    p, store, clock, shop = setup(tmp_path, extra="history: 9d")
    clock.advance(timedelta(days=9))  # a first tick that learns 9 days of orders
    assert p.tick("orders").ok
    spike = floor_now = clock.now()
    shop.revised.update({spike + k * STEP: 5_000 for k in range(3)})
    clock.advance(timedelta(hours=3))  # down for three hours; the spike is long over
    result = p.tick("orders")
    assert result.ok and result.since == floor_now
    assert [c.status for c in result.incidents] == ["opened", "resolved"]
    p.flush_groups(group_wait=True)  # what `run --once` and the delivery job do
    [told] = store.notifications()
    assert told.payload["late"] is True and told.payload["status"] == "resolved"
    assert told.payload["anomalies"][0]["timestamp"] >= spike.isoformat()
    p.close()
    store.close()


def test_a_metric_whose_detectors_are_still_warming_up_is_said_once(tmp_path, caplog) -> None:
    """The default detector learns a week before it scores: meanwhile dashboards show values
    and bands and nothing alerts, which looked like a metric that finds nothing. The tick says
    so once; with a history as long as the warm-up, nothing is said."""
    caplog.set_level(logging.WARNING, logger="monitor.pipeline")
    p, store, clock, _ = setup(tmp_path)
    run(p, clock, T0 + timedelta(minutes=30))
    said = [r.getMessage() for r in caplog.records if "warming up" in r.getMessage()]
    assert said == ["orders: detectors still warming up (robust_seasonal needs 1w): no alerts "
                    "from them until they have learned that much; a `history:` at least that long "
                    "on the metric learns it from the past on the first tick"]
    p.close()
    store.close()
    caplog.clear()
    warm = tmp_path / "warm"
    warm.mkdir()
    p, store, clock, _ = setup(warm, extra="history: 8d")
    run(p, clock, T0 + timedelta(minutes=30))
    assert not [r for r in caplog.records if "warming up" in r.getMessage()]
    p.close()
    store.close()


def test_source_metrics_count_the_retries_of_an_sdk_source() -> None:
    """Salesforce and GA4 retry through ``SdkSource.call``; their retries were logged but
    ``cxmon_source_http_retries_total`` stayed 0 (it read an HttpClient they do not have)."""
    class Flaky(SdkSource):
        def classify(self, exc):
            return ("retriable", None, "HTTP 503") if isinstance(exc, OSError) else None

        def fetch(self, request: PollRequest):
            tries = iter([OSError("503"), OSError("503"), None])

            def call() -> pd.DataFrame:
                err = next(tries)
                if err:
                    raise err
                return pd.DataFrame()
            return self.call(call)

    sleeps: list[float] = []
    src = Flaky("sf", SourceConfig(type="salesforce"), sleep=sleeps.append)
    src.fetch(PollRequest("m", T0, T0 + timedelta(hours=1)))
    assert sleeps == [1.0, 2.0]  # backoff, without waiting
    registry = CollectorRegistry()
    result = SimpleNamespace(metric="m", skipped=None, error=None, rows_in=0, rejected={})
    SourceMetrics(registry).observe("sf", src, result)  # type: ignore[arg-type]
    get = registry.get_sample_value
    assert get("cxmon_source_http_retries_total", {"source": "sf"}) == 2
    assert get("cxmon_source_http_requests_total", {"source": "sf"}) == 3


def test_zero_denominator_buckets_are_counted_without_a_warning(tmp_path, caplog) -> None:
    """A night hour with no sessions has no rate: counted with the tick's rejected counts,
    but not a WARNING each poll as a bad row would be (it is normal traffic)."""
    text = CONFIG.replace("value: count", "value: {{ratio: [count, visits]}}")
    cfg = parse_config(text.format(db=tmp_path / "s.db", extra=""), env={})

    class QuietNights(Shop):
        def fetch(self, request: PollRequest) -> pd.DataFrame:
            df = super().fetch(request)
            df["visits"] = np.where(df["channel"] == "app", 0, 200)  # the app had nobody
            return df

    store = Store.open(cfg.store.url)
    clock = FakeClock(T0 + STEP)
    p = Pipeline(cfg, store, clock=clock, sources={"shop": QuietNights()},
                 notifiers={"console": object()})  # type: ignore[dict-item]
    with caplog.at_level(logging.INFO, logger="monitor.pipeline"):
        result = run(p, clock, T0 + 2 * STEP)[-1]
    assert result.error is None and result.rejected == {"zero_denominator": 1}
    said = [r for r in caplog.records if "zero denominator" in r.getMessage()]
    assert said and all(r.levelno == logging.INFO for r in said)
    assert not [r for r in caplog.records
                if r.levelno >= logging.WARNING and "rejected" in r.getMessage()]
    p.close()
    store.close()
