"""The feedback path reads the injected clock, never the wall clock beside it: a verdict's
``created_at`` and the dismissal it causes (``dismissed.at`` in the resolution every receiver
gets) come from the clock of the store that recorded the verdict. Fake clocks throughout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from typer.testing import CliRunner

from alerts.feedback_server import FeedbackApp, slack_signature
from monitor.cli import app
from monitor.clock import FakeClock
from monitor.store import Store
from tests.test_alert_changes_acks import CONFIG, SECRET, T0, M, Monitor, anomaly


@pytest.fixture
def mon(store_url: str) -> Any:
    m = Monitor(store_url)
    yield m
    assert m.store is not None
    m.store.close()


def _not_anomaly(app_: FeedbackApp, incident: str) -> int:
    """A signed "Not an anomaly" click, stamped by the app's clock as Slack would stamp it."""
    payload = {"type": "block_actions", "user": {"username": "ana"},
               "actions": [{"action_id": "cxmon_not_anomaly", "type": "button",
                            "value": json.dumps({"incident": incident, "anomalies": []})}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(app_.clock.now().timestamp()))
    return app_.handle("POST", "/slack/actions", {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(SECRET, ts, body)}, body).status


def test_the_feedback_endpoint_reads_its_stores_clock(mon: Monitor, store_url: str) -> None:
    """``cxmon run`` gives its store the injected clock and started the endpoint without it:
    the endpoint judged request ages and stamped dismissals on a wall clock of its own."""
    mon.tick(T0, anomaly("uk", T0, 55))
    key = mon.sent()[0]["incident_key"]
    clock = FakeClock(T0 + 10 * M)
    server_store = Store.open(store_url, clock=clock)  # the endpoint's process
    try:
        feedback = FeedbackApp(server_store, SECRET, responder=None)  # no clock of its own
        assert _not_anomaly(feedback, key) == 200  # fresh on the injected clock
        (anomaly_id,) = server_store.incident_anomaly_ids(key)
        (verdict,) = server_store.feedback_on(anomaly_id)
    finally:
        server_store.close()
    resolved = mon.sent()[-1]
    assert resolved["status"] == "resolved"
    assert resolved["dismissed"]["at"] == (T0 + 10 * M).isoformat()
    assert verdict["created_at"] == T0 + 10 * M


def test_cxmon_feedback_dismisses_on_the_clock_that_stamped_the_verdict(
        mon: Monitor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mon.tick(T0, anomaly("uk", T0, 55))
    key = mon.sent()[0]["incident_key"]
    assert mon.store is not None
    (anomaly_id,) = mon.store.incident_anomaly_ids(key)
    path = tmp_path / "c.yaml"
    path.write_text(f"store: {mon.url}\n{CONFIG}")
    later = T0 + 20 * M
    monkeypatch.setattr("monitor.store.database.SystemClock", lambda: FakeClock(later))
    out = CliRunner().invoke(app, ["feedback", anomaly_id, "not_anomaly", "-c", str(path),
                                   "--user", "ana"])
    assert out.exit_code == 0, out.output
    assert f"dismissed: incident {key} closed" in out.output
    assert mon.sent()[-1]["dismissed"]["at"] == later.isoformat()
    (verdict,) = mon.store.feedback_on(anomaly_id)
    assert verdict["created_at"] == later
