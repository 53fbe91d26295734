"""The exporter: per-series gauges with labels, health metrics, cardinality guard, HTTP."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from dashboards.exporter import Exporter, SeriesGauges
from monitor.model import Anomaly, Direction
from monitor.pipeline import TickResult

KEYS = [
    'checkout_dropoff_rate{journey="checkout"}',
    'checkout_dropoff_rate{channel="app",journey="checkout"}',
    'csat{channel="web",journey="support",region="uk"}',
]


def _scores(keys, value=0.3):
    n = len(keys)
    return pd.DataFrame({
        "timestamp": pd.Timestamp("2026-01-05", tz="UTC"), "series": keys,
        "value": np.full(n, value), "expected": 0.25, "lower": 0.2, "upper": 0.3,
        "score": 0.9, "severity": 30,
    })


def _samples(text: str) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text) for s in fam.samples
    }


def test_series_gauges_and_health_metrics_over_http():
    ex = Exporter(registry=CollectorRegistry())
    anomaly = Anomaly(KEYS[1], "checkout_dropoff_rate", {"journey": "checkout", "channel": "app"},
                      pd.Timestamp("2026-01-05", tz="UTC").to_pydatetime(), 0.5, 0.25, 0.2, 0.3,
                      0.99, 80, Direction.UP, "default")
    ex.observe(TickResult("checkout_dropoff_rate", rows_in=10, rejected={"negative": 2},
                          anomalies=[anomaly], seconds=0.2, scores=_scores(KEYS[:2])))
    ex.observe(TickResult("csat", error="boom", seconds=0.1))
    ex.observe(TickResult("csat", skipped="backing off"))
    ex.observe(TickResult("csat", scores=_scores(KEYS[2:], value=4.1),
                          fits_in_flight={"seasonal": 3}))
    port = ex.start("127.0.0.1", 0)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        s = _samples(r.text)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert health == {"status": "ok", "ticks": 4, "series": 3}
        assert httpx.get(f"http://127.0.0.1:{port}/nope").status_code == 404
    finally:
        ex.stop()
    lbl = (("channel", "app"), ("cx_metric", "checkout_dropoff_rate"), ("journey", "checkout"))
    assert s[("cxmon_series_value", lbl)] == 0.3
    assert s[("cxmon_series_upper", lbl)] == 0.3
    assert s[("cxmon_series_severity", lbl)] == 30
    csat = (("channel", "web"), ("cx_metric", "csat"), ("journey", "support"), ("region", "uk"))
    assert s[("cxmon_series_value", csat)] == 4.1
    assert s[("cxmon_ticks_total", (("cx_metric", "csat"), ("outcome", "error")))] == 1
    assert s[("cxmon_ticks_total", (("cx_metric", "csat"), ("outcome", "skipped")))] == 1
    assert s[("cxmon_rows_rejected_total",
              (("cx_metric", "checkout_dropoff_rate"), ("reason", "negative")))] == 2
    assert s[("cxmon_anomalies_total", (("cx_metric", "checkout_dropoff_rate"),
                                        ("journey", "checkout"), ("severity", "critical")))] == 1
    assert s[("cxmon_tick_duration_seconds_count",
              (("cx_metric", "checkout_dropoff_rate"),))] == 1
    assert s[("cxmon_exporter_series", ())] == 3
    assert s[("cxmon_detector_fits_in_flight",
              (("cx_metric", "csat"), ("detector", "seasonal")))] == 3


def test_cardinality_cap_counts_overflow_and_opt_in_list():
    ex = Exporter(registry=CollectorRegistry(), max_series=2)
    ex.observe(TickResult("checkout_dropoff_rate", scores=_scores(KEYS[:2])))
    ex.observe(TickResult("csat", scores=_scores(KEYS[2:])))
    ex.observe(TickResult("csat", scores=_scores(KEYS[2:])))
    s = _samples(ex.render().decode())
    assert s[("cxmon_exporter_series", ())] == 2
    assert s[("cxmon_exporter_series_dropped_total", (("cx_metric", "csat"),))] == 2
    assert not any(k[0] == "cxmon_series_value" and ("cx_metric", "csat") in k[1] for k in s)
    # Known series keep updating once the cap is reached.
    ex.observe(TickResult("checkout_dropoff_rate", scores=_scores(KEYS[:1], value=0.9)))
    assert ex.series._values["value"][0] == 0.9
    rendered = _samples(ex.render().decode())  # the cached text was invalidated by the update
    assert rendered[("cxmon_series_value", (("cx_metric", "checkout_dropoff_rate"),
                                            ("journey", "checkout")))] == 0.9
    opt = SeriesGauges(max_series=10, metrics=["csat"])
    assert opt.update([(KEYS[0], (1, 1, 1, 1, 0, 0)), (KEYS[2], (2, 2, 2, 2, 0, 0))]) == {}
    assert len(opt) == 1 and opt.dropped == {}


def test_fast_render_matches_the_collector():
    g = SeriesGauges()
    g.update([(KEYS[2], (1.5, float("nan"), float("-inf"), float("inf"), 0.5, 3))])
    reg = CollectorRegistry()
    reg.register(g)
    from prometheus_client import generate_latest

    fast = _samples(g.render().decode())
    slow = _samples(generate_latest(reg).decode())
    assert fast.keys() == slow.keys()
    for k in fast:
        assert (fast[k] == slow[k]) or (fast[k] != fast[k] and slow[k] != slow[k])


def test_telemetry_times_polls_and_counts_errors_by_kind(tmp_path):
    import os
    from datetime import timedelta

    from dashboards.telemetry import Telemetry
    from monitor.clock import FakeClock
    from monitor.config import load_config
    from monitor.pipeline import Pipeline
    from monitor.store import Store
    from sources.base import RetriableSourceError

    env = {**os.environ, "CXMON_DEMO_ANCHOR": "2026-01-05T00:00:00Z",
           "CXMON_DEMO_STORE": f"sqlite:///{tmp_path / 'd.db'}"}
    cfg = load_config("monitor/examples/demo.yaml", env=env)
    store = Store.open(cfg.store.url)
    tel = Telemetry(cfg, store, registry=CollectorRegistry())
    start = pd.Timestamp("2026-01-05T03:00Z").to_pydatetime()
    pipeline = Pipeline(cfg, store, clock=FakeClock(start), notifiers={}, sources=tel.sources)
    tel.on_tick(pipeline.tick("checkout_dropoff_rate"))
    inner = tel.sources["shop"]._inner
    real_fetch = inner.fetch

    def failing(request):
        raise RetriableSourceError("shop: 503 from the demo")

    inner.fetch = failing
    pipeline.clock.set(start + timedelta(hours=1))
    tel.on_tick(pipeline.tick("csat"))
    inner.fetch = real_fetch
    s = _samples(tel.exporter.render().decode())
    store.close()
    assert s[("cxmon_source_poll_seconds_count", (("source", "shop"), ("type", "demo")))] == 2
    assert s[("cxmon_source_poll_errors_total",
              (("kind", "retriable"), ("source", "shop"), ("type", "demo")))] == 1
    assert s[("cxmon_ticks_total", (("cx_metric", "csat"), ("outcome", "error")))] == 1
    assert s[("cxmon_ticks_total",
              (("cx_metric", "checkout_dropoff_rate"), ("outcome", "ok")))] == 1
    # The per-source metrics of sources/metrics.py are on the same registry / payload.
    assert any(k[0] == "cxmon_source_polls_total" for k in s)
    assert s[("cxmon_notifications", (("receiver", "console"), ("status", "pending")))] == 0


def test_exporter_config_block_defaults_and_strictness():
    import pytest

    from monitor.config import parse_config
    from monitor.errors import ConfigError

    base = ("sources: {s: {type: demo, anchor: '2026-01-05T00:00:00Z'}}\n"
            "metrics: [{name: m, source: s, value: v}]\n")
    default = parse_config(base)
    assert (default.exporter.address, default.exporter.port) == ("127.0.0.1", 9464)
    assert default.exporter.max_series == 10_000 and default.exporter.metrics is None
    custom = parse_config(base + "exporter: {port: 0, max_series: 5, metrics: [m]}\n")
    assert (custom.exporter.port, custom.exporter.max_series) == (0, 5)
    with pytest.raises(ConfigError) as exc:
        parse_config(base + "exporter: {port: 70000, colour: red}\n")
    paths = {p.path for p in exc.value.problems}
    assert {"exporter.port", "exporter.colour"} <= paths
    # exporter.metrics names metrics: a typo exported nothing for it, silently
    with pytest.raises(ConfigError) as exc:
        parse_config(base.replace("name: m,", "name: checkout_dropoff_rate,")
                     .replace("[{", "[{name: csat, source: s, value: v}, {")
                     + "exporter: {metrics: [csat, chekout_dropoff_rate]}\n")
    [problem] = exc.value.problems
    assert problem.path == "exporter.metrics[1]"
    assert "'chekout_dropoff_rate' is not defined (did you mean 'checkout_dropoff_rate'?)" in (
        problem.message)


def test_notifications_flushed_by_the_delivery_job_are_counted_and_the_outbox_is_fresh(
        tmp_path):
    """With group_wait, notifications reach the outbox in the scheduler's delivery job, not
    in a tick: the counter stayed 0 and the outbox gauges waited for the next tick."""
    from datetime import timedelta

    from dashboards.telemetry import Telemetry
    from monitor.scheduler import Scheduler
    from tests.test_sources_pipeline import STEP, setup

    p, store, clock, shop = setup(tmp_path, extra="history: 9d")
    tel = Telemetry(p.config, store, registry=CollectorRegistry(), sources={"shop": shop})
    p.outbox.notifiers = {"console": type("Sink", (), {"send": lambda self, payload: None})()}
    clock.advance(timedelta(days=9))
    tel.on_tick(p.tick("orders"))
    shop.revised[clock.now()] = 5_000  # a spike: an incident opens, waits group_wait
    clock.advance(STEP)
    result = p.tick("orders")
    tel.on_tick(result)
    assert result.incidents and result.notifications == 0  # nothing enqueued by the tick
    key = ("cxmon_notifications_enqueued_total", (("receiver", "console"),))
    assert _samples(tel.exporter.render().decode())[key] == 0
    clock.advance(timedelta(minutes=1))  # past group_wait (30s)
    Scheduler(p, on_deliver=tel.on_deliver)._deliver()  # the delivery job, once
    s = _samples(tel.exporter.render().decode())
    assert s[key] == 1
    assert s[("cxmon_notifications", (("receiver", "console"), ("status", "sent")))] == 1
    p.close()
    store.close()


def test_source_lag_is_now_minus_the_newest_stored_point_and_grows_between_ticks(tmp_path):
    """``cxmon_source_lag_seconds``: the health dashboard needs how far behind each metric's
    data is; computed at scrape time from the injected clock, so it keeps growing when ticks
    stop (a gauge set per tick would freeze exactly then)."""
    import os
    from datetime import timedelta

    from dashboards.telemetry import Telemetry
    from monitor.clock import FakeClock
    from monitor.config import load_config
    from monitor.pipeline import Pipeline
    from monitor.store import Store

    env = {**os.environ, "CXMON_DEMO_ANCHOR": "2026-01-05T00:00:00Z",
           "CXMON_DEMO_STORE": f"sqlite:///{tmp_path / 'd.db'}"}
    cfg = load_config("monitor/examples/demo.yaml", env=env)
    store = Store.open(cfg.store.url)
    clock = FakeClock(pd.Timestamp("2026-01-05T03:00Z").to_pydatetime())
    tel = Telemetry(cfg, store, registry=CollectorRegistry(), clock=clock)
    pipeline = Pipeline(cfg, store, clock=clock, notifiers={}, sources=tel.sources)
    key = ("cxmon_source_lag_seconds",
           (("cx_metric", "checkout_dropoff_rate"), ("source", "shop")))
    try:
        assert key not in _samples(tel.exporter.render().decode())  # nothing stored: unknown
        tel.on_tick(pipeline.tick("checkout_dropoff_rate"))
        newest = store.last_point_time("checkout_dropoff_rate")
        assert newest is not None
        lag = _samples(tel.exporter.render().decode())[key]
        assert lag == (clock.now() - newest).total_seconds() > 0
        clock.advance(timedelta(minutes=10))  # no tick: the data only gets older
        assert _samples(tel.exporter.render().decode())[key] == lag + 600
        clock.advance(timedelta(hours=1))  # a tick that stores a newer bucket: lag drops
        tel.on_tick(pipeline.tick("checkout_dropoff_rate"))
        newer = store.last_point_time("checkout_dropoff_rate")
        assert newer is not None and newer > newest
        lag = _samples(tel.exporter.render().decode())[key]
        assert lag == (clock.now() - newer).total_seconds()
        # a restarted monitor knows the lag before any tick (from the store), and a tick
        # with nothing new to poll leaves it as it is
        tel2 = Telemetry(cfg, store, registry=CollectorRegistry(), clock=clock)
        assert _samples(tel2.exporter.render().decode())[key] == lag
        # ... and when each metric last ticked well, so a metric whose every tick fails
        # after the restart shows as stale on the health dashboard instead of as no value
        last = ("cxmon_last_tick_timestamp_seconds", (("cx_metric", "checkout_dropoff_rate"),))
        good = store.last_good_ticks()
        assert set(good) == {"checkout_dropoff_rate"}  # the only metric ticked
        assert _samples(tel2.exporter.render().decode())[last] == good[
            "checkout_dropoff_rate"].timestamp()
        assert not [k for k in _samples(tel2.exporter.render().decode())
                    if k[0] == "cxmon_last_tick_timestamp_seconds"
                    and k[1] != last[1]]  # never-ticked metrics: no invented time
        restarted = Pipeline(cfg, store, clock=clock, notifiers={}, sources=tel2.sources)
        tel2.on_tick(restarted.tick("checkout_dropoff_rate"))
        assert _samples(tel2.exporter.render().decode())[key] == lag
        restarted.close()
    finally:
        pipeline.close()
        store.close()


def test_replay_passes_delivery_reports_so_the_demo_counts_its_notifications(tmp_path):
    """``cxmon demo`` replays history with ``replay``: its delivery passes flush the alert
    groups, and their notifications were missing from cxmon_notifications_enqueued_total
    (0 while the outbox gauge said 42 sent)."""
    from datetime import timedelta

    from dashboards.telemetry import Telemetry
    from monitor.scheduler import replay
    from tests.test_sources_pipeline import STEP, setup

    p, store, clock, shop = setup(tmp_path, extra="history: 9d")
    tel = Telemetry(p.config, store, registry=CollectorRegistry(), sources={"shop": shop})
    p.outbox.notifiers = {"console": type("Sink", (), {"send": lambda self, payload: None})()}
    clock.advance(timedelta(days=9))
    tel.on_tick(p.tick("orders"))  # the history
    shop.revised[clock.now() + STEP] = 5_000  # a spike: an incident opens, waits group_wait
    results = replay(p, clock, clock.now() + 3 * STEP, step=STEP,
                     on_step=lambda _t, rs: [tel.on_tick(r) for r in rs],
                     on_deliver=tel.on_deliver)
    assert any(r.incidents for r in results)
    assert sum(r.notifications for r in results) == 0  # all of them came from group flushes
    s = _samples(tel.exporter.render().decode())
    sent = s[("cxmon_notifications", (("receiver", "console"), ("status", "sent")))]
    assert sent >= 1
    assert s[("cxmon_notifications_enqueued_total", (("receiver", "console"),))] == sent
    p.close()
    store.close()


def test_readme_lists_the_health_metrics_with_their_real_labels():
    """The README's metric list is what SREs write PromQL from: every name it gives is
    exported, with exactly the labels it shows (it said cxmon_rows_rejected_total{reason}
    and cxmon_rows_total without labels, though both carry cx_metric)."""
    import re
    from pathlib import Path

    from alerts.feedback_server import FeedbackApp
    from sources.metrics import SourceMetrics

    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text[text.index("**Metrics.** Each monitored"):text.index("**Cardinality guard.**")]
    registry = CollectorRegistry()
    Exporter(registry=registry)
    SourceMetrics(registry=registry)
    FeedbackApp(None, "secret", registry=registry)  # type: ignore[arg-type]
    collectors = registry._names_to_collectors
    wrong = []
    documented = re.findall(r"(cxmon_[a-z_]+)(\{[a-z_,]+\}|\{[^}]*=)?", section)
    for name, labels in documented:
        if name.startswith("cxmon_series_"):  # the per-series gauges: labels are the series'
            continue
        collector = collectors.get(name)
        real = tuple(getattr(collector, "_labelnames", ("<not exported>",)))
        if collector is not None and not hasattr(collector, "_labelnames"):  # custom (the lag)
            real = tuple(label for fam in collector.describe() for label in fam._labelnames)
        if "=" in labels:  # a PromQL example selecting by a label, not a list of labels
            used = set(re.findall(r"([a-z_]+)\s*[=!]~?", labels))
            labels = "{" + ",".join(real) + "}" if used <= set(real) else labels
        if (labels or "{}") != "{" + ",".join(real) + "}":
            wrong.append(f"{name}{labels} exported as {name}{{{','.join(real)}}}")
    assert len(documented) > 15 and not wrong, wrong


def test_send_attempts_are_counted_per_receiver_and_outcome(tmp_path):
    """A receiver that is down shows on /metrics at its first failed attempt (the outbox
    gauges only said `pending`, the same as a notification that was merely new)."""
    from datetime import UTC, datetime, timedelta

    from alerts.notifiers.base import NotifyError
    from alerts.outbox import DeliveryPolicy, OutboxWorker
    from monitor.clock import FakeClock
    from monitor.model import Notification
    from monitor.store import Store

    class Down:
        def send(self, payload):
            raise NotifyError("HTTP 503", retryable=True)

    class Up:
        def send(self, payload):
            return None

    clock = FakeClock(datetime(2026, 1, 5, 10, tzinfo=UTC))
    store = Store.open(f"sqlite:///{tmp_path / 'a.db'}")
    with store.transaction() as tx:
        tx.enqueue([Notification("a", "hook", "i1"), Notification("b", "slack", "i2")],
                   clock.now())
    worker = OutboxWorker(store, {"hook": Down(), "slack": Up()}, clock,
                          DeliveryPolicy(max_attempts=2, base_delay=timedelta(seconds=1)))
    exporter = Exporter(registry=CollectorRegistry())
    exporter.observe_attempts(worker.deliver_due().attempts)
    clock.advance(timedelta(seconds=1))
    exporter.observe_attempts(worker.deliver_due().attempts)
    s = _samples(exporter.render().decode())

    def attempts(receiver, outcome):
        return s[("cxmon_notification_attempts_total",
                  (("outcome", outcome), ("receiver", receiver)))]

    assert (attempts("hook", "retry"), attempts("hook", "dead")) == (1, 1)
    assert attempts("slack", "sent") == 1
    store.close()


def test_every_family_names_the_cxmon_metric_cx_metric() -> None:
    """PromQL joins cxmon's families ``on(cx_metric)``: the per-source metrics used to call
    the same label ``metric``, so a join matched nothing. No family may label it ``metric``
    (a series' own label of that name would clash), and the source metrics carry cx_metric."""
    from datetime import UTC, datetime

    from dashboards.exporter import METRIC_LABEL
    from sources import metrics as source_metrics

    registry = CollectorRegistry()
    Exporter(registry=registry)
    sm = source_metrics.SourceMetrics(registry=registry)
    sm.declare("shop", "orders")
    sm.lag.update("shop", "orders", datetime(2026, 1, 5, tzinfo=UTC))
    labels = {f.name: {k for s in f.samples for k in s.labels} for f in registry.collect()}
    labels.update({n: set(c._labelnames) for n, c in registry._names_to_collectors.items()
                   if getattr(c, "_labelnames", None)})
    assert source_metrics.METRIC_LABEL == METRIC_LABEL == "cx_metric"
    assert not [n for n, ls in labels.items() if "metric" in ls]
    for family in ("cxmon_source_rows", "cxmon_source_rows_rejected", "cxmon_source_polls",
                   "cxmon_source_last_data_timestamp_seconds", "cxmon_source_no_data",
                   "cxmon_source_lag_seconds", "cxmon_ticks", "cxmon_last_tick_timestamp_seconds"):
        assert {"cx_metric"} <= labels[family], family
