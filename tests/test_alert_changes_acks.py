"""An update says what changed since the last message its receiver got (from the store, so it
survives a restart), and an acknowledged incident sends no reminders until it changes
materially or resolves. Fake clock throughout; nothing sleeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from rich.console import Console
from typer.testing import CliRunner

from alerts.acks import acknowledge, list_acks
from alerts.blocks import render_message
from alerts.changes import describe, diff
from alerts.dismiss import dismissals
from alerts.dispatch import Dispatcher
from alerts.feedback_server import FeedbackApp, slack_signature
from alerts.grouping import AlertGroups
from alerts.notifiers.config import SlackReceiverConfig
from alerts.notifiers.console import ConsoleNotifier
from alerts.notifiers.pagerduty import pagerduty_event
from alerts.notifiers.slack import SlackNotifier
from alerts.notifiers.webhook import webhook_body
from alerts.outbox import OutboxWorker
from alerts.payload import incident_payload
from alerts.receipts import StoreReceipts
from alerts.silences import active_silences, add_silence
from monitor.cli import app
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.incidents import IncidentChange, IncidentTracker
from monitor.model import Anomaly, Direction, Series
from monitor.store import Store, alert_acks_t
from tests.fakes.slack_server import TOKEN, SlackServer

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday
M, H = timedelta(minutes=1), timedelta(hours=1)
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"

CONFIG = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics: [{name: checkout_dropoff_rate, source: s, value: v}]
alerting:
  receivers: [{name: ops}]
  route: {receiver: ops, group_by: [journey], group_wait: 0s, group_interval: 5m,
          repeat_interval: 1h}
"""


def series(region: str) -> Series:
    return Series("checkout_dropoff_rate", {"journey": "checkout", "region": region},
                  ("region",))


def anomaly(region: str, at: datetime, severity: int) -> Anomaly:
    s = series(region)
    return Anomaly(s.key, s.metric, s.labels, at, 0.587, 0.335, 0.25, 0.42, 0.99, severity,
                   Direction.UP, "fast")


class Monitor:
    """The tick's alerting half, as the pipeline runs it: incidents persisted (series,
    linked anomalies), then alert groups applied and flushed in one transaction. Fresh
    objects on a reopened store = a restart (the tracker is kept: restoring it is the
    pipeline's job, tested elsewhere)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.tracker = IncidentTracker(["journey"], renotify=timedelta(0), severity_step=10)
        self.store: Store | None = None
        self.restart()

    def restart(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store = Store.open(self.url)
        store = self.store
        dispatcher = Dispatcher(parse_config(CONFIG, env={}).alerting,
                                silences=lambda now: active_silences(store, now))
        self.groups = AlertGroups(dispatcher, {"ops"})

    def tick(self, at: datetime, *anomalies: Anomaly, resolve: bool = False) -> None:
        assert self.store is not None
        with self.store.transaction() as tx:
            held = [inc.key for inc in self.tracker.active()]  # Pipeline._learn_dismissals
            for key, dismissal in dismissals(tx, held).items():
                self.tracker.dismiss(key, dismissal)
            changes = self.tracker.observe(anomalies, at) if anomalies else []
            if resolve:
                changes += self.tracker.resolve_quiet(at)
            payloads = {id(c): incident_payload(c, percent={"checkout_dropoff_rate"})
                        for c in changes if c.notify}
            tx.ensure_series([series(str(a.labels["region"])) for a in anomalies])
            tx.add_anomalies(list(anomalies))
            for c in changes:
                _persist(tx, c)
            self.groups.apply(tx, changes, payloads, at)
            self.groups.flush(tx, at)

    def flush(self, at: datetime) -> None:
        assert self.store is not None
        with self.store.transaction() as tx:
            self.groups.flush(tx, at, self.tracker.active())

    def sent(self) -> list[dict[str, Any]]:
        assert self.store is not None
        return [dict(n.payload) for n in self.store.notifications() if n.status != "suppressed"]


def _persist(tx: Any, change: IncidentChange) -> None:
    """What the pipeline stores of a change (``Pipeline._persist_incident``)."""
    inc = change.incident
    summary = {"group": inc.group, "series": sorted(inc.series),
               **({"dismissed": inc.dismissed} if inc.dismissed is not None else {})}
    if inc.dismissed is not None:  # closed when dismissed: it stays closed
        if change.status != "resolved":
            iid = tx.absorb_into_closed(inc.key, severity=inc.severity, at=change.at,
                                        summary=summary)
            tx.link_anomalies(iid, [a.id for a in change.anomalies])
        return
    if change.status == "resolved":
        tx.resolve_incident(inc.key, change.at)
        return
    iid = tx.open_incident(inc.key, journey=inc.group.get("journey"), severity=inc.severity,
                           at=inc.opened_at if change.status == "opened" else change.at,
                           summary=summary)
    tx.link_anomalies(iid, [a.id for a in change.anomalies])


@pytest.fixture
def mon(store_url: str) -> Any:
    m = Monitor(store_url)
    yield m
    assert m.store is not None
    m.store.close()


# -- 1. an update says what changed ------------------------------------------------------------


def test_an_update_after_a_restart_says_what_changed_everywhere(mon: Monitor) -> None:
    mon.tick(T0, anomaly("uk", T0, 35))
    (first,) = mon.sent()
    assert "changes" not in first  # the first message of a group has none
    assert "Update" not in render_message(first)["text"]

    mon.restart()  # what was told comes back from the store
    mon.tick(T0 + 5 * M, anomaly("uk", T0 + 5 * M, 38))  # +3 severity: no update yet
    assert len(mon.sent()) == 1
    mon.restart()
    mon.tick(T0 + 10 * M, anomaly("uk", T0 + 10 * M, 52), anomaly("us", T0 + 10 * M, 40))
    _, update = mon.sent()
    us = series("us").key
    assert update["changes"] == {
        "since": T0.isoformat(),
        "severity": {"from": 35, "to": 52, "level": "high"},
        "new_points": 3,  # 05 (told nothing then) and 10 on uk, 10 on us
        "new_series": [us], "new_series_total": 1,
    }
    said = "severity 35 → 52 (high); 3 new anomalous points; also anomalous now: region=us"

    msg = render_message(update)  # Slack: the notification text and a context block
    assert msg["text"].startswith(f"Update: {said} · checkout journey · ")
    assert msg["blocks"][1] == {"type": "context", "elements": [{
        "type": "mrkdwn", "text": f"*Update* since 2026-01-05 10:00 UTC: {said}"}]}

    rec = Console(record=True, width=200)
    ConsoleNotifier(rec).send(update)
    assert f"Update: {said}" in rec.export_text()

    pd = pagerduty_event(update, "rk")["payload"]
    assert pd["summary"].startswith(f"Update: {said} · ")
    assert pd["custom_details"]["changes"]["severity"] == {"from": 35, "to": 52,
                                                          "level": "high"}
    hook = json.loads(webhook_body("ops", "k", update))["notification"]
    assert hook["changes"]["new_points"] == 3 and hook["changes"]["new_series"] == [us]


def test_the_next_update_compares_with_the_update_not_the_first_message(
        mon: Monitor) -> None:
    mon.tick(T0, anomaly("uk", T0, 35))
    mon.tick(T0 + 10 * M, anomaly("uk", T0 + 10 * M, 52), anomaly("us", T0 + 10 * M, 40))
    mon.restart()
    mon.tick(T0 + 20 * M, anomaly("de", T0 + 20 * M, 45))
    *_, third = mon.sent()
    assert third["changes"] == {"since": (T0 + 10 * M).isoformat(), "new_points": 1,
                                "new_series": [series("de").key], "new_series_total": 1}
    assert describe(third["changes"], third["group"]) == (
        "1 new anomalous point; also anomalous now: region=de")


def test_a_reminder_says_nothing_changed_and_the_slack_message_fits(mon: Monitor) -> None:
    mon.tick(T0, anomaly("uk", T0, 60))
    mon.restart()
    mon.flush(T0 + H)
    first, reminder = mon.sent()
    assert reminder["repeat"] is True
    assert reminder["changes"] == {"since": T0.isoformat()}
    with SlackServer() as slack:  # enforces Block Kit's limits
        cfg = SlackReceiverConfig(token=TOKEN, channel="#cx", api_url=slack.api_url)
        assert mon.store is not None
        clock = FakeClock(T0 + H)
        worker = OutboxWorker(mon.store, {"ops": SlackNotifier(
            "ops", cfg, receipts=StoreReceipts(mon.store, clock))}, clock)
        assert worker.deliver_due().sent == 2
        top, thread = slack.messages
    assert "changes" not in first and "Reminder" not in top["text"]
    assert thread["thread_ts"] == top["ts"]
    assert thread["text"].startswith("Reminder: no change since the last message · ")
    blocks = thread["attachments"][0]["blocks"]
    assert blocks[1]["elements"][0]["text"] == (
        "*Reminder* since 2026-01-05 10:00 UTC: no change since the last message")


def test_diff_reports_only_what_differs() -> None:
    told = {"severity": 50, "points": 2, "series": ["a"], "measures": ["m"], "root_cause": []}
    assert diff(told, told, "t") == {"since": "t"}
    assert describe(None) == ""


# -- 2. acknowledge stops reminders ------------------------------------------------------------


def _click(app_: FeedbackApp, incident: str, at: datetime) -> int:
    """A signed "Acknowledge" click, as Slack posts it."""
    payload = {"type": "block_actions", "user": {"id": "U1", "username": "ana"},
               "actions": [{"action_id": "cxmon_ack", "type": "button",
                            "value": json.dumps({"incident": incident, "anomalies": []})}]}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(at.timestamp()))
    return app_.handle("POST", "/slack/actions", {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(SECRET, ts, body)}, body).status


def test_acknowledged_incident_sends_no_reminders_until_it_changes_materially(
        mon: Monitor) -> None:
    mon.tick(T0, anomaly("uk", T0, 40))
    key = mon.sent()[0]["incident_key"]
    assert mon.store is not None
    clock = FakeClock(T0 + 10 * M)
    assert _click(FeedbackApp(mon.store, SECRET, clock=clock), key, clock.now()) == 200
    (ack,) = list_acks(mon.store)
    assert (ack.acked_by, ack.source, ack.severity) == ("ana", "slack", 40)

    mon.restart()  # the acknowledgement is in the store
    mon.flush(T0 + H)
    mon.flush(T0 + 2 * H)
    # more points at the same level: no update, and still no reminder
    mon.tick(T0 + 2 * H + 5 * M, anomaly("uk", T0 + 2 * H + 5 * M, 45))
    mon.flush(T0 + 3 * H + 5 * M)
    assert len(mon.sent()) == 1
    assert [a.incident_key for a in list_acks(mon.store)] == [key]

    # the severity rises a level (medium -> high): the update goes out, the ack is lifted
    at = T0 + 3 * H + 10 * M
    mon.tick(at, anomaly("uk", at, 55))
    _, update = mon.sent()
    assert update["changes"]["severity"] == {"from": 40, "to": 55, "level": "high"}
    # the team must read that the incident is no longer handled as far as cxmon knows
    assert update["changes"]["ack_lifted"] == {"by": "ana", "at": ack.acked_at.isoformat(),
                                               "reason": "severity"}
    assert describe(update["changes"]).endswith(
        "acknowledged by ana, but its severity rose a level: reminders are back on")
    assert list_acks(mon.store) == []
    mon.restart()
    mon.flush(at + H)  # reminders resume
    *_, reminder = mon.sent()
    assert reminder["repeat"] is True and len(mon.sent()) == 3
    assert "ack_lifted" not in reminder["changes"]  # said once, by the update


def test_a_new_series_lifts_the_ack_even_when_no_update_was_sent(store_url: str) -> None:
    """The tracker throttles updates (``renotify``); the reminder checks the store itself."""
    mon = Monitor(store_url)
    mon.tracker.renotify = 10 * H
    try:
        mon.tick(T0, anomaly("uk", T0, 40))
        assert mon.store is not None
        acknowledge(mon.store, mon.sent()[0]["incident_key"], by="bo", source="cli",
                    now=T0 + M)
        mon.tick(T0 + 5 * M, anomaly("us", T0 + 5 * M, 41))  # spread, but throttled
        assert len(mon.sent()) == 1
        mon.restart()
        mon.flush(T0 + H)
        _, reminder = mon.sent()
        assert reminder["repeat"] is True
        assert reminder["changes"]["new_series"] == [series("us").key]
        assert reminder["changes"]["ack_lifted"]["reason"] == "series"
        assert describe(reminder["changes"]).endswith(
            "acknowledged by bo, but it spread to new series: reminders are back on")
        assert list_acks(mon.store) == []
    finally:
        assert mon.store is not None
        mon.store.close()


def test_a_silenced_update_does_not_lift_the_ack(mon: Monitor) -> None:
    """Nobody was told of the higher severity, so reminders stay off until someone is."""
    mon.tick(T0, anomaly("uk", T0, 40))
    assert mon.store is not None
    acknowledge(mon.store, mon.sent()[0]["incident_key"], by="bo", source="cli", now=T0)
    add_silence(mon.store, ['journey="checkout"'], now=T0 + 5 * M, duration=H)
    mon.tick(T0 + 10 * M, anomaly("uk", T0 + 10 * M, 55))
    assert len(mon.sent()) == 1  # suppressed
    assert len(list_acks(mon.store)) == 1


def test_cli_ack_then_resolution_is_still_sent_and_ends_the_ack(
        mon: Monitor, tmp_path: Path) -> None:
    mon.tick(T0, anomaly("uk", T0, 60))
    key = mon.sent()[0]["incident_key"]
    path = tmp_path / "c.yaml"
    path.write_text(f"store: {mon.url}\n{CONFIG}")
    run = CliRunner().invoke
    out = run(app, ["alerts", "ack", "-c", str(path), key[:12], "--by", "ana"])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == f"acknowledged {key} (sev 60, 1 series)"
    out = run(app, ["alerts", "acks", "-c", str(path)], env={"COLUMNS": "200"})
    assert key in out.output and "by ana (cli)" in out.output
    assert "acknowledged: 1 incident(s)" in run(app, ["alerts", "status", "-c", str(path)],
                                                env={"COLUMNS": "200"}).output
    typo = run(app, ["alerts", "ack", "-c", str(path), "journey=chekout"])
    assert typo.exit_code == 1  # a typo names the open incidents it could have meant
    assert f"journey=chekout matches no open incident; open: {key}" in typo.output

    mon.restart()
    mon.flush(T0 + 2 * H)
    assert len(mon.sent()) == 1  # no reminder
    mon.tick(T0 + 4 * H, resolve=True)
    mon.flush(T0 + 4 * H + 5 * M)
    *_, resolution = mon.sent()
    assert resolution["status"] == "resolved" and "changes" not in resolution
    assert mon.store is not None
    with mon.store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_acks_t)).scalar() == 0
    out = run(app, ["alerts", "acks", "-c", str(path)], env={"COLUMNS": "200"})
    assert out.output.strip() == "no open incidents, so nothing to acknowledge"


def test_cli_unack_resumes_reminders(mon: Monitor, tmp_path: Path) -> None:
    mon.tick(T0, anomaly("uk", T0, 60))
    key = mon.sent()[0]["incident_key"]
    path = tmp_path / "c.yaml"
    path.write_text(f"store: {mon.url}\n{CONFIG}")
    run = CliRunner().invoke
    assert run(app, ["alerts", "ack", "-c", str(path), key]).exit_code == 0
    mon.flush(T0 + H)
    assert len(mon.sent()) == 1
    out = run(app, ["alerts", "unack", "-c", str(path), key[:12]])  # first characters, as ack
    assert out.exit_code == 0 and f"unacknowledged {key}" in out.output
    again = run(app, ["alerts", "unack", "-c", str(path), key])
    assert again.exit_code == 1 and f"{key} is not acknowledged" in again.output
    mon.flush(T0 + 2 * H)
    assert [p.get("repeat") for p in mon.sent()] == [None, True]


NAMED = CONFIG.replace(
    "metrics: [{name: checkout_dropoff_rate, source: s, value: v}]",
    "metrics: [{name: checkout_dropoff_rate, source: s, value: v, "
    "title: Checkout drop-off rate}]\n"
    "display:\n  labels: {region: Region}\n"
    "  values: {region: {uk: UK}, journey: {checkout: Checkout}}")


def test_cli_listings_read_the_display_names_beside_the_identifiers(
        mon: Monitor, tmp_path: Path) -> None:
    """``alerts ack``, ``alerts acks``, ``alerts status`` and ``anomalies`` say incidents and
    series as people read them once the config names them; the keys people type stay."""
    assert "display:" in NAMED and "title:" in NAMED
    mon.tick(T0, anomaly("uk", T0, 60))
    key = mon.sent()[0]["incident_key"]
    named, plain = tmp_path / "named.yaml", tmp_path / "plain.yaml"
    named.write_text(f"store: {mon.url}\n{NAMED}")
    plain.write_text(f"store: {mon.url}\n{CONFIG}")
    run = CliRunner().invoke
    wide = {"COLUMNS": "200"}

    out = run(app, ["alerts", "ack", "-c", str(named), key[:12], "--by", "ana"])
    assert out.exit_code == 0, out.output
    assert out.output.strip() == f"acknowledged {key} · Checkout journey (sev 60, 1 series)"

    out = run(app, ["alerts", "acks", "-c", str(named)], env=wide)
    header, row = out.output.splitlines()
    assert header.split() == ["Incident", "Sev", "Group", "Acknowledged"]
    assert row.startswith(key) and " Checkout journey " in row and "by ana (cli)" in row
    out = run(app, ["alerts", "acks", "-c", str(plain)], env=wide)
    assert out.output.splitlines()[0].split() == ["Incident", "Sev", "Acknowledged"]
    assert "Checkout journey" not in out.output

    status = run(app, ["alerts", "status", "-c", str(named)], env=wide)
    assert status.exit_code == 0, status.output
    header = next(line for line in status.output.splitlines() if "┃ id" in line)
    columns = [c.strip() for c in header.split("┃")[1:-1]]
    assert columns[1:6] == ["status", "message", "receiver", "incident", "group"]
    row = next(line for line in status.output.splitlines() if key in line)
    assert [c.strip() for c in row.split("│")[1:-1]][4:6] == [key, "Checkout journey"]
    status = run(app, ["alerts", "status", "-c", str(plain)], env=wide)
    assert key in status.output and "group" not in status.output
    assert "Checkout journey" not in status.output

    out = run(app, ["anomalies", "-c", str(named)], env=wide)
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[1].endswith(
        "Checkout drop-off rate · journey: Checkout, Region: UK")
    out = run(app, ["anomalies", "-c", str(plain)], env=wide)
    assert out.stdout.splitlines()[1].endswith(
        'checkout_dropoff_rate{journey="checkout",region="uk"}')


def test_unack_prefix_shared_by_two_acks_is_refused() -> None:
    from alerts.cli import _acked_key

    keys = ["journey=checkout@2026-01-27T11:00Z", "journey=checkout@2026-01-28T09:00Z"]
    assert _acked_key(keys, "journey=checkout@2026-01-28") == (keys[1], "")
    key, why = _acked_key(keys, "journey=checkout")
    assert key is None and "matches 2 acknowledged incidents" in why and keys[0] in why
    assert _acked_key(keys, "journey=search")[0] is None


# -- 5. a false alarm closes the page (alerts/dismiss.py) -------------------------------------


def test_a_dismissed_incident_stays_quiet_until_its_severity_rises_a_level(mon: Monitor) -> None:
    from alerts.dismiss import dismiss_false_alarms

    mon.tick(T0, anomaly("uk", T0, 55))  # high
    assert mon.store is not None
    key = mon.sent()[0]["incident_key"]
    ids = mon.store.incident_anomaly_ids(key)
    for i in ids:
        mon.store.add_feedback(i, "not_anomaly", source="slack", user="ana")
    assert dismiss_false_alarms(mon.store, ids, by="ana", now=T0 + 10 * M) == [key]
    assert dismiss_false_alarms(mon.store, ids, by="bo", now=T0 + 11 * M) == []  # once
    resolved = mon.sent()[-1]
    assert resolved["status"] == "resolved" and resolved["dismissed"]["by"] == "ana"
    assert resolved["dismissed"]["label"] == "not_anomaly"
    mon.restart()  # the dismissal is in the store
    mon.tick(T0 + H, anomaly("us", T0 + H, 70))  # a new series, still "high": quiet
    mon.flush(T0 + 3 * H)  # and no reminders
    assert len(mon.sent()) == 2
    mon.tick(T0 + 4 * H, anomaly("de", T0 + 4 * H, 80))  # critical: worse than dismissed
    mon.flush(T0 + 4 * H + 5 * M)
    again = mon.sent()[2:]
    assert [(p["status"], p["update"]) for p in again] == [("firing", False)]  # a new page
    # of a new incident: the dismissed one stays closed, with the series that joined it
    assert again[0]["incident_key"] != key
    closed, new = mon.store.incidents()
    assert (closed["key"], closed["status"], closed["resolved_at"]) == (
        key, "resolved", T0 + 10 * M)
    assert closed["summary"]["dismissed"]["by"] == "ana" and len(
        mon.store.incident_anomaly_ids(key)) == 2
    assert (new["key"], new["status"]) == (again[0]["incident_key"], "open")
    mon.tick(T0 + 9 * H, resolve=True)
    mon.flush(T0 + 9 * H + 5 * M)
    assert [p["status"] for p in mon.sent()[3:]] == ["resolved"]


def test_a_rise_in_the_minute_a_dismissed_incident_opened_is_a_new_incident(
        mon: Monitor) -> None:
    """An incident's key is its group and the minute of its first anomaly: a rise after a
    dismissal with anomalies of that same minute (a late series, the roll-up) got the
    dismissed incident's key and reopened its row (the dismissal undone, in the same
    thread). Each rise is a new incident with a key of its own, the third one too."""
    from alerts.dismiss import dismiss_false_alarms

    assert mon.store is not None
    keys: list[str] = []
    for n, (region, severity) in enumerate([("uk", 40), ("de", 60), ("fr", 80)]):
        mon.tick(T0 + 10 * n * M, anomaly(region, T0, severity))  # all of minute T0
        mon.flush(T0 + (10 * n + 1) * M)
        first = mon.sent()[-1]
        assert (first["status"], first["update"]) == ("firing", False)  # a new page
        keys.append(first["incident_key"])
        ids = mon.store.incident_anomaly_ids(keys[-1])
        assert ids == [anomaly(region, T0, severity).id]  # not the dismissed one's
        if n < 2:
            for i in ids:
                mon.store.add_feedback(i, "not_anomaly", source="slack", user="ana")
            assert dismiss_false_alarms(mon.store, ids, by="ana",
                                        now=T0 + (10 * n + 2) * M) == [keys[-1]]
    assert len(set(keys)) == 3
    rows = mon.store.incidents()
    assert [(r["key"], r["status"]) for r in rows] == [
        (keys[0], "resolved"), (keys[1], "resolved"), (keys[2], "open")]
    assert [r["resolved_at"] for r in rows[:2]] == [T0 + 2 * M, T0 + 12 * M]
    assert all(r["summary"]["dismissed"]["by"] == "ana" for r in rows[:2])


def test_a_dismissed_incident_resolves_without_a_second_resolution(mon: Monitor) -> None:
    from alerts.dismiss import dismiss_false_alarms

    mon.tick(T0, anomaly("uk", T0, 40))
    assert mon.store is not None
    key = mon.sent()[0]["incident_key"]
    ids = mon.store.incident_anomaly_ids(key)
    for i in ids:
        mon.store.add_feedback(i, "expected", source="cli")
    assert dismiss_false_alarms(mon.store, ids, by="bo", now=T0 + M) == [key]
    mon.tick(T0 + 6 * H, resolve=True)
    mon.flush(T0 + 6 * H + 5 * M)
    assert [p["status"] for p in mon.sent()] == ["firing", "resolved"]
    assert mon.sent()[1]["title"] == "journey=checkout: dismissed as an expected change by bo"
    # a second verdict (another click) sends nothing again
    assert dismiss_false_alarms(mon.store, ids, by="cy", now=T0 + 7 * H) == []
    assert len(mon.sent()) == 2


def test_cli_feedback_on_the_last_anomaly_dismisses_the_incident(
        mon: Monitor, tmp_path: Path) -> None:
    mon.tick(T0, anomaly("uk", T0, 60), anomaly("us", T0, 40))
    assert mon.store is not None
    key = mon.sent()[0]["incident_key"]
    first, second = mon.store.incident_anomaly_ids(key)
    path = tmp_path / "c.yaml"
    path.write_text(f"store: {mon.url}\n{CONFIG}")
    run = CliRunner().invoke
    out = run(app, ["feedback", first, "not_anomaly", "-c", str(path), "--user", "ana"])
    assert out.exit_code == 0, out.output
    assert "dismissed" not in out.output and len(mon.sent()) == 1  # one of two: still open
    out = run(app, ["feedback", second, "expected", "-c", str(path), "--user", "ana"])
    assert out.exit_code == 0, out.output
    assert (f"dismissed: incident {key} closed (every anomaly of it is marked); whoever was "
            "told of it (PagerDuty, Slack, webhooks) gets its resolution") in out.output
    assert mon.sent()[-1]["dismissed"]["by"] == "ana"
