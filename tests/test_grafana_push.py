"""``cxmon dashboards push`` against a local server speaking Grafana's HTTP API."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

import pandas as pd
import pytest
from typer.testing import CliRunner

from dashboards.grafana import build_all
from dashboards.links import grafana_link, journey_uid, panel_id
from dashboards.push import (
    Caller,
    GrafanaPushError,
    anomaly_annotations,
    connect,
    post_annotations,
    push_dashboards,
)
from monitor.cli import app
from monitor.config import load_config
from tests.fakes.grafana_server import FakeGrafana


@pytest.fixture
def grafana():
    fake = FakeGrafana()
    url = fake.start()
    yield fake, url
    fake.stop()


@pytest.fixture
def demo_cfg():
    env = {**os.environ, "CXMON_DEMO_ANCHOR": "2026-01-05T00:00:00Z"}
    return load_config("monitor/examples/demo.yaml", env=env)


def test_push_creates_folder_saves_dashboards_and_searches(grafana, demo_cfg):
    fake, url = grafana
    api = connect(url, fake.token)
    built = build_all(demo_cfg, ["returns"])
    report = push_dashboards(api, built)
    calls = [(r.method, r.path) for r in fake.requests]
    assert calls == [
        ("GET", "/api/folders/cxmon"),
        ("POST", "/api/folders"),
        *[("POST", "/api/dashboards/db")] * len(built),
        ("GET", "/api/search"),
    ]
    assert fake.requests[1].body == {"title": "cxmon", "uid": "cxmon"}
    saved = fake.requests[2].body
    assert saved["folderUid"] == "cxmon" and saved["overwrite"] is True
    assert saved["dashboard"]["uid"] == "cxmon-overview" and "id" not in saved["dashboard"]
    assert fake.requests[-1].query == {"tag": ["cxmon"], "type": ["dash-db"]}
    assert all(r.headers["Authorization"] == "Bearer test-token" for r in fake.requests)
    assert report.folder_created and report.found == sorted(b.uid for b in built)
    # A second push reuses the folder and overwrites (new versions), still idempotent.
    fake.requests.clear()
    again = push_dashboards(api, built)
    assert not again.folder_created
    assert [(r.method, r.path) for r in fake.requests][:2] == [
        ("GET", "/api/folders/cxmon"), ("POST", "/api/dashboards/db")]
    assert fake.dashboards["cxmon-journey-checkout"]["version"] == 2


def test_annotations_posted_once_on_the_journey_panel(grafana):
    fake, url = grafana
    api = connect(url, fake.token)
    ts = pd.Timestamp("2026-01-27T12:00Z")
    frame = pd.DataFrame([{
        "id": "abc123", "series": 'checkout_dropoff_rate{channel="app",journey="checkout"}',
        "metric": "checkout_dropoff_rate", "labels": {"journey": "checkout", "channel": "app"},
        "ts": ts, "value": 0.55, "expected": 0.30, "severity": 80,
    }])
    payloads = anomaly_annotations(frame)
    report = post_annotations(api, payloads)
    assert report.annotations_posted == 1
    get, post = fake.requests
    assert (get.method, get.path) == ("GET", "/api/annotations")
    assert get.query["tags"] == ["cxmon"]
    assert (post.method, post.path) == ("POST", "/api/annotations")
    assert post.body == {
        "dashboardUID": "cxmon-journey-checkout",
        "panelId": panel_id("checkout_dropoff_rate"),
        "time": int(ts.timestamp() * 1000),
        "timeEnd": int(ts.timestamp() * 1000),
        "tags": ["cxmon", "journey:checkout", "cx_metric:checkout_dropoff_rate",
                 "severity:critical", "anomaly:abc123"],
        "text": 'checkout_dropoff_rate{channel="app",journey="checkout"}: 0.55 vs expected '
                "0.3 (+83%), severity 80",
    }
    again = post_annotations(api, payloads)
    assert again.annotations_posted == 0 and again.annotations_skipped == 1
    assert len(fake.annotations) == 1


def test_wrong_token_is_an_error(grafana, demo_cfg):
    fake, url = grafana
    with pytest.raises(GrafanaPushError) as err:
        push_dashboards(connect(url, "nope"), build_all(demo_cfg))
    assert str(err.value) == (f"reading folder cxmon failed at {url}: HTTP 401 Unauthorized "
                              "(check the grafana: token)")
    assert fake.folders == {} and fake.dashboards == {}
    assert len(fake.requests) == 1  # a 401 is not retried


BAD_GATEWAY = ("<html><head><title>502 Bad Gateway</title></head><body><center>"
               "<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>")


def test_html_error_is_one_line_with_status_and_retried(grafana, demo_cfg):
    fake, url = grafana
    fake.html_errors = [(502, BAD_GATEWAY)] * 3
    waits: list[float] = []
    call = Caller(url.replace("http://", "http://admin:pw@"), sleep=waits.append)
    with pytest.raises(GrafanaPushError) as err:
        push_dashboards(connect(url, fake.token), build_all(demo_cfg), call=call)
    assert str(err.value) == (f"reading folder cxmon failed at {url}: HTTP 502 Bad Gateway "
                              "after 3 tries")
    assert waits == [1.0, 2.0]
    # a proxy that recovers: the push goes through after one retry
    fake.html_errors = [(503, BAD_GATEWAY)]
    waits.clear()
    report = push_dashboards(connect(url, fake.token), build_all(demo_cfg), call=call)
    assert waits == [1.0] and report.found


def test_connection_refused_is_retried_then_one_clear_line(demo_cfg):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    call = Caller(f"http://admin:s3cret@127.0.0.1:{port}/grafana?token=t0k", sleep=waits.append)
    with pytest.raises(GrafanaPushError) as err:
        push_dashboards(connect(f"http://127.0.0.1:{port}", "t0k"), build_all(demo_cfg),
                        call=call)
    assert str(err.value) == (f"reading folder cxmon failed at http://127.0.0.1:{port}/grafana: "
                              "connection refused after 3 tries")
    assert waits == [1.0, 2.0]


def test_push_command_prints_one_line_and_exits_1(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr("dashboards.push.time.sleep", lambda _s: None)
    cfg = tmp_path / "cxmon.yaml"
    cfg.write_text(f"""
store: sqlite:///{tmp_path}/cx.db
sources: {{shop: {{type: demo, anchor: "2026-01-05T00:00:00Z"}}}}
metrics:
  - {{name: dropoff, source: shop, query: checkout, interval: 1h, timestamp: ts,
     value: {{ratio: [abandoned, started]}}, labels: {{journey: checkout}}}}
grafana: {{url: "http://admin:pw-s3cret@127.0.0.1:{port}", token: "${{GRAFANA_TOKEN}}"}}
""")
    res = CliRunner().invoke(app, ["dashboards", "push", "-c", str(cfg), "--no-annotations"],
                             env={"GRAFANA_TOKEN": "glsa_secret_token", "COLUMNS": "200"})
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"grafana: reading folder cxmon failed at http://127.0.0.1:{port}: connection refused "
        "after 3 tries"]
    assert "s3cret" not in res.output and "glsa_" not in res.output


def test_deep_link_points_at_generated_dashboard_and_panel(demo_cfg):
    built = {b.uid: b.model for b in build_all(demo_cfg)}
    link = grafana_link("http://g:3000", "checkout", metric="checkout_dropoff_rate",
                        labels={"journey": "checkout", "channel": "app", "team": "x"},
                        at=datetime(2026, 1, 27, 12, tzinfo=UTC))
    uid = journey_uid("checkout")
    assert link.startswith(f"http://g:3000/d/{uid}/")
    model = built[uid]
    ids = {p["id"] for p in model["panels"] if "id" in p}
    assert panel_id("checkout_dropoff_rate") in ids
    assert f"viewPanel={panel_id('checkout_dropoff_rate')}" in link
    assert "var-channel=app" in link and "var-team" not in link
    assert "channel" in [v["name"] for v in model["templating"]["list"]]
    start = int(datetime(2026, 1, 27, 0, tzinfo=UTC).timestamp() * 1000)
    assert f"from={start}" in link


def test_no_data_annotations_read_as_silence_not_nan() -> None:
    ts = pd.Timestamp("2026-01-27T12:00Z")
    base = {"metric": "contacts", "labels": {"journey": "support"}, "ts": ts, "severity": 60,
            "kind": "no_data"}
    frame = pd.DataFrame([
        {**base, "id": "a", "series": 'contacts{journey="support"}', "detector": "no_data",
         "value": 9.0, "expected": 0.0},
        {**base, "id": "b", "series": 'contacts{channel="web",journey="support"}',
         "detector": "default", "value": float("nan"), "expected": 133.0},
    ])
    texts = [p["text"] for p in anomaly_annotations(frame)]
    assert texts == ['contacts{journey="support"}: no data, silent 9 intervals, severity 60',
                     'contacts{channel="web",journey="support"}: no data, stopped (last 133), '
                     "severity 60"]


def test_push_with_annotations_refuses_a_store_that_does_not_exist(grafana, tmp_path):
    """A mistyped sqlite path created a fresh, empty store and pushed "0 posted": annotations
    silently missing. Like every command that only reads the store, push now says so."""
    fake, url = grafana
    cfg = tmp_path / "cxmon.yaml"
    cfg.write_text(f"""
store: sqlite:///{tmp_path}/typo.db
sources: {{shop: {{type: demo, anchor: "2026-01-05T00:00:00Z"}}}}
metrics:
  - {{name: dropoff, source: shop, query: checkout, interval: 1h, timestamp: ts,
     value: {{ratio: [abandoned, started]}}, labels: {{journey: checkout}}}}
grafana: {{url: "{url}", token: "${{GRAFANA_TOKEN}}"}}
""")
    res = CliRunner().invoke(app, ["dashboards", "push", "-c", str(cfg)],
                             env={"GRAFANA_TOKEN": fake.token, "COLUMNS": "300"})
    assert res.exit_code == 1
    assert "no store at" in res.output and "typo.db" in res.output
    assert not (tmp_path / "typo.db").exists()
    assert fake.requests == []  # nothing pushed before the problem was reported


def test_alert_links_never_carry_the_grafana_url_credentials():
    """grafana.url may hold user:password for `dashboards push` (basic auth); the same URL
    is the base of every alert's "Open in Grafana" link, which put the password in Slack
    and PagerDuty."""
    from alerts.blocks import grafana_link as alert_link

    payload = {"journey": "checkout", "opened_at": "2026-01-27T11:00:00+00:00",
               "anomalies": [{"metric": "checkout_dropoff_rate",
                              "labels": {"journey": "checkout", "channel": "app"},
                              "timestamp": "2026-01-27T11:00:00+00:00"}]}
    link = alert_link(payload, "https://admin:pw-s3cret@grafana.example.com:3000/g/")
    assert link is not None
    assert link.startswith("https://grafana.example.com:3000/g/d/cxmon-journey-checkout/")
    assert "s3cret" not in link and "admin" not in link
    plain = grafana_link("http://g:3000", None)
    assert plain == "http://g:3000/d/cxmon-overview/cxmon-overview?orgId=1"


def test_calendar_days_are_region_annotations_on_each_journey_posted_once(grafana):
    """A holiday's blank scores explain themselves on the graph: one region annotation per
    calendar day (midnight to midnight in its calendar's zone) per journey dashboard whose
    metrics follow the calendar; a second push adds none."""
    from datetime import date, timedelta

    from dashboards.push import calendar_annotations
    from monitor.config import parse_config

    fake, url = grafana
    api = connect(url, fake.token)
    cfg = parse_config("""
sources: {shop: {type: demo}}
metrics:
  - {name: dropoff, source: shop, query: checkout, interval: 1h, timestamp: ts,
     dimensions: [region], value: {ratio: [abandoned, started]}, labels: {journey: checkout}}
  - {name: returns, source: shop, query: returns, interval: 1h, timestamp: ts,
     value: returns, labels: {journey: returns}, calendar: false}
calendar:
  timezone: Europe/London
  holidays: [GB]
  events: [{name: Sale, start: 2026-12-26, end: 2026-12-26, mode: score}]
  by: {label: region, values: {de: {timezone: Europe/Berlin, holidays: [DE]}}}
""")
    payloads = calendar_annotations(cfg, ["checkout", "returns"], date(2026, 12, 24),
                                    date(2026, 12, 26))
    assert [p["text"] for p in payloads] == [
        "Christmas Day (other series): calendar skip day, not scored, alerted or learned",
        "Sale (other series): calendar score day, scored, not learned",
        "Christmas Day (region=de): calendar skip day, not scored, alerted or learned",
        # the top-level event applies to de too (a value's calendar inherits what it does
        # not set), and an event wins over the holiday of its date
        "Sale (region=de): calendar score day, scored, not learned",
    ]
    assert {p["dashboard_uid"] for p in payloads} == {"cxmon-journey-checkout"}  # returns opts out
    berlin = payloads[2]
    start = datetime(2026, 12, 24, 23, tzinfo=UTC)  # midnight in Berlin
    assert (berlin["time_from"], berlin["time_to"]) == (
        int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000))
    assert post_annotations(api, payloads).annotations_posted == 4
    again = post_annotations(api, payloads)
    assert again.annotations_posted == 0 and again.annotations_skipped == 4
    assert len(fake.annotations) == 4
    assert fake.annotations[0]["tags"][:3] == ["cxmon", "journey:checkout", "calendar"]


def test_annotations_read_the_numbers_as_the_alert_did() -> None:
    """With the config: the metric's unit and scale, the volume behind the value and display
    names (``0.587 vs expected 0.335`` was what the annotation showed for 58.7%)."""
    from monitor.config import parse_config

    cfg = parse_config("""
sources: {shop: {type: demo}}
display: {labels: {channel: Channel}, values: {channel: {app: App}}}
metrics:
  - {name: checkout_dropoff_rate, source: shop, query: checkout, interval: 1h, timestamp: ts,
     value: {ratio: [abandoned, started]}, volume_unit: checkouts, dimensions: [channel]}
  - {name: csat, source: shop, query: csat, interval: 1h, timestamp: ts,
     value: {mean: [rating_sum, responses]}, scale_max: 5, decimals: 2}
""", env={})
    ts = pd.Timestamp("2026-01-27T12:00Z")
    frame = pd.DataFrame([
        {"id": "a", "series": 'checkout_dropoff_rate{channel="app",journey="checkout"}',
         "metric": "checkout_dropoff_rate", "labels": {"journey": "checkout", "channel": "app"},
         "ts": ts, "value": 0.587, "expected": 0.334, "severity": 70, "kind": "point",
         "volume": 1204.0},
        {"id": "b", "series": 'csat{journey="support"}', "metric": "csat",
         "labels": {"journey": "support"}, "ts": ts, "value": 3.1, "expected": 4.3,
         "severity": 55, "kind": "point", "volume": float("nan")},
    ])
    texts = [p["text"] for p in anomaly_annotations(frame, config=cfg)]
    assert texts[0].endswith(": 58.7% vs expected 33.4% (+76%), from 1,204 checkouts, "
                             "severity 70"), texts[0]
    assert "Channel: App" in texts[0]
    assert texts[1].endswith(": 3.10 / 5 vs expected 4.30 / 5 (-28%), severity 55"), texts[1]
