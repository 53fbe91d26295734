"""What PagerDuty shows of an incident after its first page. An update is a ``trigger`` with
the open alert's ``dedup_key``: PagerDuty deduplicates it into that alert (no new page) and
the alert takes its summary and severity. So each update must carry the incident as it is
now: its highest severity, sent as soon as it crosses a PagerDuty level, and a summary led by
its worst anomaly, not by the milder series that is new. Fake clock; nothing sleeps."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from alerts.notifiers.pagerduty import pagerduty_event
from alerts.notifiers.webhook import webhook_body
from monitor.config import parse_config
from monitor.incidents import IncidentTracker
from monitor.pipeline import _severity_levels
from tests.test_alert_changes_acks import CONFIG, T0, H, M, Monitor, anomaly
from tests.test_webhook_schema import problems


@pytest.fixture
def mon(store_url: str) -> Any:
    m = Monitor(store_url)
    yield m
    assert m.store is not None
    m.store.close()


def _events(mon: Monitor) -> list[dict[str, Any]]:
    return [pagerduty_event(p, "rk") for p in mon.sent()]


def test_a_rise_into_a_higher_pagerduty_level_updates_the_alert_at_once(mon: Monitor) -> None:
    """45 → 52 is less than the usual step of 10, but turns PagerDuty's ``warning`` (low
    urgency: nobody is escalated to) into an ``error`` (high urgency); it was not sent, and
    PagerDuty kept the alert a warning until the next reminder."""
    mon.tick(T0, anomaly("uk", T0, 45))
    mon.tick(T0 + 10 * M, anomaly("uk", T0 + 10 * M, 52))
    mon.tick(T0 + 20 * M, anomaly("uk", T0 + 20 * M, 55))  # +3, same level: no update
    events = _events(mon)
    assert [e["payload"]["severity"] for e in events] == ["warning", "error"]
    assert {e["event_action"] for e in events} == {"trigger"}
    assert len({e["dedup_key"] for e in events}) == 1  # one alert: deduplicated, no 2nd page
    assert events[1]["payload"]["summary"].startswith("Update: severity 45 → 52 (high)")
    assert events[1]["payload"]["summary"].endswith(" · sev 52 high")


def test_an_update_s_summary_leads_with_the_worst_anomaly_at_the_highest_severity(
        mon: Monitor) -> None:
    mon.tick(T0, anomaly("uk", T0, 80))  # critical
    mon.tick(T0 + 10 * M, anomaly("us", T0 + 10 * M, 30))  # spreads to a mild series
    mon.flush(T0 + 2 * H)  # a reminder (repeat_interval 1h)
    opening, spread, reminder = _events(mon)
    assert "in region=uk · sev 80 critical" in opening["payload"]["summary"]
    for event in (spread, reminder):
        body = event["payload"]
        assert body["severity"] == "critical" and body["summary"].endswith(
            "in region=uk · sev 80 critical"), body["summary"]  # not "in region=us"
    assert spread["payload"]["summary"].startswith(
        "Update: 1 new anomalous point; also anomalous now: region=us · ")
    assert reminder["payload"]["summary"].startswith("Reminder")
    assert len({e["dedup_key"] for e in (opening, spread, reminder)}) == 1
    # the update's own anomalies stay what is new (Slack, webhooks, custom_details)
    update = mon.sent()[1]
    assert [a["labels"]["region"] for a in update["anomalies"]] == ["us"]
    assert [a["labels"]["region"] for a in update["headline"]] == ["uk", "us"]
    assert problems(json.loads(webhook_body("ops", "k", update))) == []


def test_a_receivers_own_pagerduty_levels_are_crossings_too() -> None:
    cfg = parse_config(CONFIG.replace(
        "receivers: [{name: ops}]",
        'receivers: [{name: ops, pagerduty: {routing_key: "R0123456789abcdef0123456789abcde",'
        " severity: {critical: 90, error: 60, warning: 101}}}]"), env={})
    assert _severity_levels(cfg) == {25, 50, 60, 75, 90}
    tr = IncidentTracker(["journey"], renotify=timedelta(0),  # as the pipeline's
                         severity_levels=_severity_levels(cfg))
    tr.observe([anomaly("uk", T0, 85)], T0)
    (change,) = tr.observe([anomaly("uk", T0 + M, 91)], T0 + M)  # +6, into PD's critical
    assert change.notify and change.incident.notified_severity == 91
