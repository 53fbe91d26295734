"""An on-call lead's PagerDuty receiver, configured as the README says, in real flows: a
YAML config with a SQL source whose checkout drop-off jumps, the monitor replayed on a fake
clock, its outbox delivered to a local server that checks events as PagerDuty's Events API v2
does (202 on success; 400 with PagerDuty's error body for an invalid event; 429 and 5xx
injected), across reminders, a restart, silences and a "not an anomaly" verdict."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from monitor.clock import FakeClock
from monitor.config import MonitorConfig, load_config
from monitor.pipeline import Pipeline
from monitor.scheduler import replay
from monitor.store import Store
from tests.fakes.server import FakeServer, Request, Response

ANCHOR = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
SPIKE = ANCHOR + timedelta(days=10, hours=14)  # app/uk drop-off doubles for 3 hours
SPIKE_HOURS = 3
ROUTING_KEY = "R0123456789abcdef0123456789abcde"  # 32 characters, as PagerDuty's are
HOOK_SECRET = "whsec-0123456789abcdef"
SEVERITIES = {"critical", "error", "warning", "info"}


def funnel_rows(start: datetime, end: datetime) -> pd.DataFrame:
    """Hourly checkout sessions per channel/region with a daily cycle and binomial noise."""
    rng = np.random.default_rng(7)
    rows = []
    for ts in pd.date_range(start, end, freq="1h", inclusive="left"):
        daily = 1 + 0.6 * np.sin((ts.hour - 8) / 24 * 2 * np.pi)
        for channel in ("app", "web"):
            for region in ("uk", "de"):
                started = int(rng.poisson(400 * daily))
                p = 0.30 if channel == "app" else 0.25
                if (channel, region) == ("app", "uk") and \
                        SPIKE <= ts < SPIKE + timedelta(hours=SPIKE_HOURS):
                    p = 0.60
                rows.append((ts.to_pydatetime(), channel, region, started,
                             int(rng.binomial(started, p))))
    return pd.DataFrame(rows, columns=["ts", "channel", "region", "started", "abandoned"])


def pagerduty_api(req: Request) -> Response:
    """What PagerDuty's Events API v2 checks of an alert event (its documented contract)."""
    errors: list[str] = []
    event = req.json() if req.body else None
    if not isinstance(event, dict):
        return Response(400, {"status": "invalid event", "message": "Event object is invalid",
                              "errors": ["Body is not a JSON object"]})
    if len(str(event.get("routing_key", ""))) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge or "
                      "resolve)")
    key = event.get("dedup_key")
    if action in ("acknowledge", "resolve") and not key:
        errors.append("'dedup_key' is missing and required for acknowledge and resolve")
    if key is not None and len(str(key)) > 255:
        errors.append("'dedup_key' is too long (max 255)")
    if action == "trigger":
        payload = event.get("payload") or {}
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary:
            errors.append("'payload.summary' is missing or blank")
        elif len(summary) > 1024:
            errors.append("'payload.summary' is too long (max 1024)")
        if not payload.get("source"):
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in SEVERITIES:
            errors.append("'payload.severity' is invalid (must be one of critical, error, "
                          "warning or info)")
        for link in event.get("links") or []:
            if not str(link.get("href", "")).startswith(("http://", "https://")):
                errors.append("'links[].href' is invalid")
    if errors:
        return Response(400, {"status": "invalid event", "message": "Event object is invalid",
                              "errors": errors})
    return Response(202, {"status": "success", "message": "Event processed",
                          "dedup_key": key or "generated"})


CONFIG = """
store: "${STORE_URL}"
grafana: {url: "http://grafana.example.com"}
sources:
  warehouse: {type: sql, url: "${WAREHOUSE_URL}"}
metrics:
  - name: checkout_dropoff_rate
    source: warehouse
    interval: 1h
    query: >
      select ts, channel, region, started, abandoned
      from funnel where ts >= :since and ts < :until
    timestamp: ts
    dimensions: [channel, region]
    value: {ratio: [abandoned, started]}
    labels: {journey: checkout, team: checkout-squad}
    direction: up
    min_change: 0.2
    runbook: https://runbooks.example.com/checkout-dropoff
alerting:
  route: {receiver: oncall, group_by: [journey], group_wait: 0s, group_interval: 5m,
          repeat_interval: 1h}
  receivers:
    - name: oncall
      pagerduty: {routing_key: "${PD_ROUTING_KEY}", events_url: "${PD_URL}/v2/enqueue"%(pd)s}
%(extra)s"""


@dataclass
class Flow:
    cfg: MonitorConfig
    store: Store
    clock: FakeClock
    pd: RecordingServer
    pipeline: Pipeline

    def restart(self) -> None:
        """A new process on the same store (what ``cxmon run`` does after a crash)."""
        self.pipeline.close()
        self.pipeline = Pipeline(self.cfg, self.store, clock=self.clock)

    def run_until(self, end: datetime) -> None:
        results = replay(self.pipeline, self.clock, end)
        assert all(r.ok for r in results), [r for r in results if not r.ok]

    def events(self) -> list[dict[str, Any]]:
        """The events PagerDuty accepted (202), in order."""
        return [r.json() for r in self.pd.requests_to("/v2/enqueue") if r.status == 202]


@pytest.fixture
def make_flow(tmp_path: Path) -> Iterator[Any]:
    made: list[Flow] = []
    servers: list[RecordingServer] = []

    def make(pagerduty_extra: str = "", extra: str = "", routing_key: str = ROUTING_KEY) -> Flow:
        """``pagerduty_extra``: more keys of the pagerduty block; ``extra``: more lines of the
        receiver (a ``webhook:`` block posting to ``${PD_URL}/hook``, say)."""
        warehouse = tmp_path / "warehouse.db"
        engine = sa.create_engine(f"sqlite:///{warehouse}")
        funnel_rows(ANCHOR - timedelta(days=1), ANCHOR + timedelta(days=12)).to_sql(
            "funnel", engine, if_exists="replace", index=False)
        engine.dispose()
        server = RecordingServer().__enter__()
        servers.append(server)
        server.route("POST", "/v2/enqueue", pagerduty_api)
        server.route("POST", "/hook", lambda r: Response(204, b""))
        path = tmp_path / "cxmon.yaml"
        path.write_text(CONFIG % {"pd": pagerduty_extra, "extra": extra})
        env = {"STORE_URL": f"sqlite:///{tmp_path / 'cxmon.db'}",
               "WAREHOUSE_URL": f"sqlite:///{warehouse}", "PD_ROUTING_KEY": routing_key,
               "PD_URL": server.url, "HOOK_SECRET": HOOK_SECRET}
        cfg = load_config(path, env=env)
        store = Store.open(cfg.store.url)
        clock = FakeClock(ANCHOR + timedelta(hours=1))
        flow = Flow(cfg, store, clock, server, Pipeline(cfg, store, clock=clock))
        made.append(flow)
        return flow

    yield make
    for flow in made:
        flow.pipeline.close()
        flow.store.close()
    for server in servers:
        server.__exit__(None, None, None)


class RecordingServer(FakeServer):
    """Keeps each answer's status on its request (``Request.status``), faults included."""

    def handle(self, req: Request) -> Response:
        resp = super().handle(req)
        req.status = resp.status  # type: ignore[attr-defined]
        return resp


def test_one_pagerduty_alert_per_incident_across_updates_reminders_and_a_restart(
        make_flow: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flow = make_flow()
    flow.run_until(SPIKE + timedelta(hours=1, minutes=30))
    first = flow.events()
    assert first and first[0]["event_action"] == "trigger"
    key = first[0]["dedup_key"]
    flow.restart()
    flow.run_until(SPIKE + timedelta(hours=12))
    events = flow.events()
    assert all(e.get("dedup_key") == key for e in events), [e["dedup_key"] for e in events]
    actions = [e["event_action"] for e in events]
    assert actions[-1] == "resolve" and actions.count("resolve") == 1
    assert actions.count("trigger") >= 2  # the opening and later updates or reminders
    assert all(r.status == 202 for r in flow.pd.requests_to("/v2/enqueue"))
    trigger = events[0]
    body = trigger["payload"]
    assert body["severity"] in SEVERITIES and body["component"] == "checkout"
    # a phone's lock screen: which journey, what moved, by how much, where, how bad
    assert body["summary"].startswith("checkout journey · checkout_dropoff_rate +"), body
    assert "% expected) in channel=app, region=uk" in body["summary"]
    assert re.search(r" · sev \d+ (low|medium|high|critical)$", body["summary"])
    assert any(link["text"] == "Grafana" and link["href"].startswith(
        "http://grafana.example.com/") for link in trigger["links"])
    assert body["custom_details"]["root_cause"]
    assert ROUTING_KEY not in caplog.text



def test_a_rate_limit_and_an_outage_are_retried_and_the_page_still_goes_out_once(
        make_flow: Any) -> None:
    flow = make_flow()
    flow.run_until(SPIKE)
    flow.pd.fail(429, headers={"Retry-After": "20"},
                 body={"status": "throttle event", "message": "Requests for this service "
                       "are arriving too quickly. Please retry later."})
    flow.pd.fail(503, body={"status": "error", "message": "Service unavailable"})
    flow.run_until(SPIKE + timedelta(hours=12))
    answers = [r.status for r in flow.pd.requests_to("/v2/enqueue")]
    assert answers[:3] == [429, 503, 202]
    opening = [e for e in flow.events() if e["event_action"] == "trigger"
               and not e["payload"]["summary"].startswith(("Update", "Reminder"))]
    assert len(opening) == 1  # retried, not duplicated
    assert flow.events()[-1]["event_action"] == "resolve"
    counts = flow.store.outbox_counts()
    assert counts.get("dead", 0) == 0 and counts.get("pending", 0) == 0


def test_an_invalid_event_is_dead_lettered_with_pagerduty_s_reason(
        make_flow: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from monitor.cli import app

    wrong = ROUTING_KEY[:-1]  # one character short: PagerDuty says so
    flow = make_flow(routing_key=wrong)
    flow.run_until(SPIKE + timedelta(hours=1, minutes=30))
    assert [r.status for r in flow.pd.requests_to("/v2/enqueue")] == [400]  # not retried
    (dead,) = flow.store.notifications("dead")
    assert dead.attempts == 1
    assert dead.last_error == (
        "pagerduty oncall: HTTP 400 Bad Request: Event object is invalid (Length of "
        "'routing_key' is incorrect (should be 32 characters))")
    env = {"STORE_URL": flow.cfg.store.url, "WAREHOUSE_URL": "sqlite://", "PD_URL": "http://x",
           "PD_ROUTING_KEY": wrong, "HOOK_SECRET": HOOK_SECRET, "COLUMNS": "200"}
    out = CliRunner().invoke(app, ["alerts", "status", "-c", str(tmp_path / "cxmon.yaml")],
                             env=env)
    assert out.exit_code == 0, out.output
    assert "routing_key' is incorrect" in out.output
    assert wrong not in out.output


def test_a_silence_stops_updates_and_reminders_but_not_the_resolve(make_flow: Any) -> None:
    """The on-call silences an incident already paged ("we know, stop pinging"): PagerDuty
    gets nothing more while it lasts, but still the resolve when cxmon resolves it, or the
    PagerDuty incident would stay open after the problem is gone."""
    from alerts.silences import add_silence

    flow = make_flow()
    flow.run_until(SPIKE + timedelta(hours=1, minutes=30))
    assert [e["event_action"] for e in flow.events()] == ["trigger"]
    add_silence(flow.store, ['journey="checkout"'], now=flow.clock.now(),
                duration=timedelta(days=1), created_by="ana", comment="known: bad deploy")
    flow.run_until(SPIKE + timedelta(hours=12))
    assert [e["event_action"] for e in flow.events()] == ["trigger", "resolve"]
    assert len({e["dedup_key"] for e in flow.events()}) == 1
    assert any(n.status == "suppressed" for n in flow.store.notifications())


def click(flow: Flow, action: str, incident: str, user: str = "ana") -> dict[str, Any]:
    """A Slack feedback button clicked on the incident's message, through the endpoint that
    records it (signed as Slack signs); returns the reply it posts back to Slack."""
    from alerts.feedback_server import FeedbackApp, slack_signature

    replies: list[dict[str, Any]] = []
    app = FeedbackApp(flow.store, "slack-signing-secret", clock=flow.clock,
                      responder=lambda url, message: replies.append(message))
    payload = {"type": "block_actions", "user": {"username": user},
               "response_url": "https://hooks.slack.com/actions/T0/1/x",
               "actions": [{"action_id": action,
                            "value": json.dumps({"incident": incident, "anomalies": []})}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(flow.clock.now().timestamp()))
    answer = app.handle("POST", "/slack/actions", {
        "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature("slack-signing-secret", ts, body)}, body)
    assert answer.status == 200, answer
    (reply,) = replies
    return reply


def test_not_an_anomaly_resolves_the_page_at_once(make_flow: Any) -> None:
    """The on-call, paged, looks and clicks "Not an anomaly": PagerDuty must stop escalating
    now, not when cxmon resolves the incident hours later, and the reminders must stop
    re-triggering it. A webhook consumer's incident closes too."""
    flow = make_flow(extra='      webhook: {url: "${PD_URL}/hook"}')
    flow.run_until(SPIKE + timedelta(hours=1, minutes=30))
    (trigger,) = flow.events()
    key = trigger["dedup_key"]
    reply = click(flow, "cxmon_not_anomaly", key)
    assert "Dismissed: the incident is closed" in reply["text"]
    flow.run_until(flow.clock.now() + timedelta(minutes=1))  # the next delivery pass
    assert [e["event_action"] for e in flow.events()] == ["trigger", "resolve"]
    assert flow.events()[1]["dedup_key"] == key
    (hook,) = [r.json()["notification"] for r in flow.pd.requests_to("/hook")
               if r.json()["notification"]["status"] == "resolved"]
    assert hook["dismissed"] == {"by": "ana", "at": (SPIKE + timedelta(hours=1, minutes=30))
                                 .isoformat(), "label": "not_anomaly"}
    assert hook["title"] == "journey=checkout: dismissed as a false alarm by ana"
    from tests.test_webhook_schema import problems

    assert [problems(r.json()) for r in flow.pd.requests_to("/hook")] == [[], []]
    flow.run_until(SPIKE + timedelta(hours=12))
    # no reminders re-triggering it, no update when the roll-up (driven by the very values
    # called a false alarm) moves an hour later, and no second resolve when cxmon resolves it
    assert [e["event_action"] for e in flow.events()] == ["trigger", "resolve"]
    assert [r.json()["notification"]["status"] for r in flow.pd.requests_to("/hook")] == [
        "firing", "resolved"]


def test_a_confirmed_or_partial_verdict_leaves_the_page_open(make_flow: Any) -> None:
    flow = make_flow()
    flow.run_until(SPIKE + timedelta(hours=1, minutes=30))
    key = flow.events()[0]["dedup_key"]
    reply = click(flow, "cxmon_ack", key)
    assert "dismissed" not in reply["text"]
    ids = flow.store.incident_anomaly_ids(key)
    flow.store.add_feedback(ids[0], "not_anomaly", source="cli")
    from alerts.dismiss import dismiss_false_alarms

    assert len(ids) > 1
    assert dismiss_false_alarms(flow.store, ids[:1], by="bo", now=flow.clock.now()) == []
    for i in ids[1:]:
        flow.store.add_feedback(i, "not_anomaly", source="cli")
    flow.store.add_feedback(ids[0], "confirmed", source="cli")  # changed their mind
    assert dismiss_false_alarms(flow.store, ids, by="bo", now=flow.clock.now()) == []
    flow.store.add_feedback(ids[0], "expected", source="cli")
    assert dismiss_false_alarms(flow.store, ids, by="bo", now=flow.clock.now()) == [key]


def test_cxmon_feedback_says_the_incident_stays_open_until_every_anomaly_is_marked(
        make_flow: Any, tmp_path: Path) -> None:
    """``cxmon feedback`` marks one anomaly; an incident of several is dismissed only when
    all are marked. Until then it says so, with how many are left, instead of nothing while
    the page keeps escalating; the last one dismisses it."""
    from typer.testing import CliRunner

    from monitor.cli import app

    flow = make_flow()
    flow.run_until(SPIKE + timedelta(hours=1, minutes=30))
    key = flow.events()[0]["dedup_key"]
    ids = flow.store.incident_anomaly_ids(key)
    assert len(ids) > 2
    env = {"STORE_URL": f"sqlite:///{tmp_path / 'cxmon.db'}",
           "WAREHOUSE_URL": f"sqlite:///{tmp_path / 'warehouse.db'}",
           "PD_ROUTING_KEY": ROUTING_KEY, "PD_URL": flow.pd.url, "HOOK_SECRET": HOOK_SECRET,
           "COLUMNS": "300"}

    def feedback(anomaly_id: str) -> str:
        res = CliRunner().invoke(app, ["feedback", "-c", str(tmp_path / "cxmon.yaml"),
                                       anomaly_id, "not_anomaly"], env=env)
        assert res.exit_code == 0, res.output
        return res.output

    first = feedback(ids[0])
    assert (f"incident {key} stays open (its pages too): {len(ids) - 1} of its {len(ids)} "
            "anomalies are not marked not_anomaly or expected") in first
    for i in ids[1:-1]:
        flow.store.add_feedback(i, "not_anomaly", source="cli")
    last = feedback(ids[-1])
    assert f"dismissed: incident {key} closed" in last and "stays open" not in last


def test_a_dismissed_incident_is_closed_at_once_and_stays_closed_across_a_restart(
        make_flow: Any) -> None:
    """"Not an anomaly" closes the incident in cxmon too, not only its page: resolved in the
    store at the click, saying who dismissed it. A restart right after still knows it: the
    rest of the spike (the very values called a false alarm) joins the closed incident
    quietly, nothing reopens it, and no receiver gets a second resolution."""
    from alerts.dismiss import dismiss_false_alarms

    flow = make_flow(extra='      webhook: {url: "${PD_URL}/hook"}')
    flow.run_until(SPIKE + timedelta(hours=1, minutes=30))
    (trigger,) = flow.events()
    key = trigger["dedup_key"]
    at = flow.clock.now()
    click(flow, "cxmon_not_anomaly", key)
    (row,) = flow.store.incidents()
    assert (row["key"], row["status"], row["resolved_at"]) == (key, "resolved", at)
    assert row["summary"]["dismissed"] == {"by": "ana", "at": at.isoformat(),
                                           "label": "not_anomaly", "severity": row["severity"]}
    assert flow.store.open_incidents() == []
    ids = flow.store.incident_anomaly_ids(key)
    assert dismiss_false_alarms(flow.store, ids, by="bo", now=at) == []  # closed already
    flow.restart()
    flow.run_until(SPIKE + timedelta(hours=12))
    assert [e["event_action"] for e in flow.events()] == ["trigger", "resolve"]
    assert [r.json()["notification"]["status"] for r in flow.pd.requests_to("/hook")] == [
        "firing", "resolved"]
    (after,) = flow.store.incidents()  # no second incident, and it was not reopened
    assert (after["key"], after["status"], after["resolved_at"]) == (key, "resolved", at)
    assert after["summary"]["dismissed"]["by"] == "ana"
    assert len(flow.store.incident_anomaly_ids(key)) > len(ids)  # the spike's later hours
    with flow.store.engine.connect() as conn:  # its groups end with its quiet period
        assert conn.execute(sa.text("select count(*) from alert_groups")).scalar() == 0
