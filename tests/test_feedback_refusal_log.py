"""Refused feedback requests log one WARNING per reason per ``warn_every`` seconds (a flood of
forged or replayed requests cannot flood the log); every refusal is still counted, and so is
every warning left out."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.feedback_server import FeedbackApp
from monitor.clock import FakeClock
from monitor.store import Store
from tests.test_feedback_server import NOW, SECRET, _refused


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.name == "alerts.feedback_server"]


def _suppressed(app: FeedbackApp, reason: str) -> float:
    return app.warnings_suppressed.labels(reason)._value.get()


def _forged(app: FeedbackApp, clock: FakeClock, *, age: float = 0.0) -> int:
    ts = str(int(clock.now().timestamp() - age))
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + "0" * 64}
    return app.handle("POST", "/slack/actions", headers, b"payload={}").status


def test_a_flood_of_refusals_logs_one_warning_per_reason_per_interval(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(NOW)
    app = FeedbackApp(store, SECRET, clock=clock, responder=None, warn_every=60)
    caplog.set_level(logging.WARNING, logger="alerts.feedback_server")
    assert [_forged(app, clock) for _ in range(50)] == [401] * 50
    assert [_forged(app, clock, age=3600) for _ in range(3)] == [401] * 3
    assert _warnings(caplog) == ["feedback: refused a request with a bad signature",
                                 "feedback: refused a request 3600 s away from now (replay?)"]
    assert _refused(app, "bad_signature") == 50 and _refused(app, "stale") == 3  # all counted
    assert _suppressed(app, "bad_signature") == 49 and _suppressed(app, "stale") == 2

    caplog.clear()
    clock.advance(timedelta(seconds=59))
    _forged(app, clock)
    assert _warnings(caplog) == []  # still inside the minute
    clock.advance(timedelta(seconds=1))
    _forged(app, clock)
    assert _warnings(caplog) == ["feedback: refused a request with a bad signature "
                                 "(and 50 more like it in the last 60 s, not logged)"]
    caplog.clear()
    clock.advance(timedelta(seconds=60))
    _forged(app, clock)
    assert _warnings(caplog) == ["feedback: refused a request with a bad signature"]


def test_left_out_warnings_are_on_the_endpoints_metrics(store: Store) -> None:
    clock = FakeClock(NOW)
    app = FeedbackApp(store, SECRET, clock=clock, responder=None)
    for _ in range(3):
        _forged(app, clock)
    text = app.handle("GET", "/metrics", {}, b"").body
    samples = {(s.name, s.labels.get("reason")): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("cxmon_feedback_warnings_suppressed_total", "bad_signature")] == 2
    assert samples[("cxmon_feedback_requests_refused_total", "bad_signature")] == 3
    assert samples[("cxmon_feedback_connections_busy_total", None)] == 0


def test_connections_refused_as_busy_are_counted_and_logged_once_a_minute(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    app = FeedbackApp(store, SECRET, clock=FakeClock(NOW), responder=None)
    caplog.set_level(logging.WARNING, logger="alerts.feedback_server")
    for _ in range(3):
        app.refused_busy(32)
    assert _warnings(caplog) == ["feedback: refused a connection: 32 already being served (a "
                                 "flood of connections or of slow clients?)"]
    assert app.busy._value.get() == 3 and _suppressed(app, "busy") == 2
