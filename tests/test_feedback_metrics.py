"""The feedback endpoint serves its own /metrics: ``cxmon serve-feedback`` run alone (no
``cxmon run``, so no exporter) still shows refused requests to Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from alerts.cli import start_feedback
from alerts.feedback_server import FeedbackApp, FeedbackServer, slack_signature
from dashboards.exporter import Exporter
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.store import Store

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def _refused(text: str) -> dict[str, float]:
    return {
        s.labels["reason"]: s.value
        for fam in text_string_to_metric_families(text) for s in fam.samples
        if s.name == "cxmon_feedback_requests_refused_total"
    }


def _post(url: str, body: bytes, *, at: datetime, secret: str = SECRET) -> int:
    ts = str(int(at.timestamp()))
    headers = {"X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": slack_signature(secret, ts, body)}
    return httpx.post(url, content=body, headers=headers).status_code


def test_refused_requests_show_on_the_feedback_endpoints_metrics(store: Store) -> None:
    clock = FakeClock(NOW)
    with FeedbackServer(FeedbackApp(store, SECRET, clock=clock)) as srv:
        metrics_url = srv.url.replace("/slack/actions", "/metrics")
        first = httpx.get(metrics_url)
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert _refused(first.text) == {"stale": 0, "bad_signature": 0, "replay": 0}

        assert _post(srv.url, b"payload={}", at=NOW, secret="forged") == 401
        assert _post(srv.url, b"payload={}", at=NOW - timedelta(minutes=6)) == 401
        assert _post(srv.url, b"payload={}", at=NOW) == 200
        assert _post(srv.url, b"payload={}", at=NOW) == 401  # the same request: a replay
        assert _refused(httpx.get(metrics_url).text) == {
            "stale": 1, "bad_signature": 1, "replay": 1}
        assert httpx.post(metrics_url).status_code == 405
        assert httpx.get(srv.url).status_code == 405  # the Slack path is unchanged


def test_a_slack_path_of_metrics_wins(store: Store) -> None:
    app = FeedbackApp(store, SECRET, clock=FakeClock(NOW), path="/metrics")
    assert app.handle("GET", "/metrics", {}, b"").status == 405  # POST only: Slack's path


def _config(tmp_path, port: int = 0, extra: str = ""):
    return parse_config(
        f"store: sqlite:///{tmp_path / 's.db'}\n"
        "sources: {shop: {type: demo}}\n"
        "metrics: [{name: m, source: shop, query: complaints, value: complaints}]\n"
        "alerting: {receivers: [{name: console, console: {}}], route: {receiver: console},\n"
        f"           feedback: {{signing_secret: {SECRET}, listen: '127.0.0.1:{port}'{extra}}}}}\n",
        env={})


def test_serve_feedback_alone_has_metrics(tmp_path) -> None:
    """What ``cxmon serve-feedback`` starts (``start_feedback`` without a registry)."""
    cfg = _config(tmp_path)
    store = Store.open(cfg.store.url)
    server = start_feedback(cfg, store)
    assert server is not None
    try:
        assert _post(server.url, b"payload={}", at=datetime.now(UTC), secret="forged") == 401
        text = httpx.get(server.url.replace("/slack/actions", "/metrics")).text
        assert _refused(text)["bad_signature"] == 1
    finally:
        server.stop()
        store.close()


def test_under_cxmon_run_the_exporter_counts_too_and_no_kpi_leaks(tmp_path) -> None:
    """With the exporter's registry (``cxmon run``) the counter is on the exporter's
    /metrics as before; the feedback listener (reachable by Slack) serves only its own."""
    with _under_run(_config(tmp_path)) as (server, exporter):
        assert _post(server.url, b"payload={}", at=datetime.now(UTC), secret="forged") == 401
        text = httpx.get(server.url.replace("/slack/actions", "/metrics")).text
        assert _refused(text)["bad_signature"] == 1
        assert "cxmon_ticks_total" not in text and "cxmon_notifications" not in text
        assert _refused(exporter.render().decode())["bad_signature"] == 1


def test_metrics_false_hides_them_on_a_public_listener_but_the_exporter_still_counts(
    tmp_path
) -> None:
    """A listener Slack can reach is often reachable by everyone: ``metrics: false`` answers
    404 on /metrics there, while the exporter (``cxmon run``) still counts refused requests."""
    cfg = _config(tmp_path, extra=", metrics: false")
    with _under_run(cfg) as (server, exporter):
        assert _post(server.url, b"payload={}", at=datetime.now(UTC), secret="forged") == 401
        assert httpx.get(server.url.replace("/slack/actions", "/metrics")).status_code == 404
        assert _refused(exporter.render().decode())["bad_signature"] == 1


@contextmanager
def _under_run(cfg) -> Iterator[tuple[FeedbackServer, Exporter]]:
    """The feedback endpoint as ``cxmon run`` starts it: with the exporter's registry."""
    store = Store.open(cfg.store.url)
    exporter = Exporter.from_config(cfg, registry=CollectorRegistry())
    server = start_feedback(cfg, store, registry=exporter.registry)
    assert server is not None
    try:
        yield server, exporter
    finally:
        server.stop()
        store.close()
