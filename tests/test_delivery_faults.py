"""Delivery under faults, against the local Slack Web API: Slack down for a while, then rate
limiting; and ``kill -9`` of a running ``cxmon`` delivery process in the middle of a Slack call.
Every notification must arrive exactly once, in order per incident, in the incident's thread."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.notifiers.config import SlackReceiverConfig
from alerts.notifiers.slack import SlackNotifier
from alerts.outbox import DeliveryPolicy, OutboxWorker
from alerts.receipts import StoreReceipts
from monitor.clock import FakeClock
from monitor.model import Notification
from monitor.store import Store
from tests.fakes.slack_server import TOKEN, SlackServer

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]
STEPS = ("opened", "updated", "updated", "updated", "resolved")


def payload(incident: str, step: int) -> dict[str, Any]:
    status = STEPS[step]
    at = T0 + timedelta(hours=step)
    anomalies = [] if status == "resolved" else [{
        "id": f"{incident}-{step}", "series": f'complaints{{journey="{incident}"}}',
        "metric": "complaints", "labels": {"journey": incident},
        "timestamp": at.isoformat(), "value": 100.0 + step, "expected": 40.0, "lower": 30.0,
        "upper": 50.0, "score": 0.999, "severity": 40 + step, "direction": "up",
        "change": 1.5, "detector": "default", "kind": "point"}]
    return {
        "status": "resolved" if status == "resolved" else "firing",
        "update": status == "updated", "incident_key": incident, "group": {"journey": incident},
        "journey": incident, "severity": 40 + step, "title": f"journey={incident}: step {step}",
        "opened_at": T0.isoformat(),
        "resolved_at": at.isoformat() if status == "resolved" else None,
        "runbook": None, "anomalies": anomalies, "anomalies_total": len(anomalies),
    }


def enqueue_incidents(store: Store, incidents: list[str]) -> list[Notification]:
    """Each incident opens, updates three times and resolves; incidents interleave."""
    out = [Notification(f"{inc}|{step}", "slack", inc, payload(inc, step))
           for step in range(len(STEPS)) for inc in incidents]
    with store.transaction() as tx:
        tx.enqueue(out, T0)
    return out


def assert_delivered_exactly_once_in_order(slack: SlackServer, sent: list[Notification]) -> None:
    keys = [m["metadata"]["event_payload"]["idempotency_key"] for m in slack.messages]
    assert Counter(keys) == Counter(n.idempotency_key for n in sent)  # each exactly once
    for incident in {n.incident_key for n in sent}:
        mine = [m for m in slack.messages
                if m["metadata"]["event_payload"]["incident_key"] == incident]
        assert [m["metadata"]["event_payload"]["idempotency_key"] for m in mine] == [
            n.idempotency_key for n in sent if n.incident_key == incident]  # in order
        root = mine[0]
        assert root["thread_ts"] is None
        assert all(m["thread_ts"] == root["ts"] for m in mine[1:])  # one thread per incident
        closes = [u for u in slack.updates if u["ts"] == root["ts"]]
        assert closes and closes[-1]["attachments"][0]["color"] == "#2E7D32"  # resolved


def test_slack_down_then_rate_limited_every_notification_arrives_once_in_order(
    store: Store,
) -> None:
    clock = FakeClock(T0)
    with SlackServer() as slack:
        cfg = SlackReceiverConfig(token=TOKEN, channel="#cx-ops", api_url=slack.api_url)
        notifier = SlackNotifier("slack", cfg, receipts=StoreReceipts(store, clock))
        worker = OutboxWorker(store, {"slack": notifier}, clock,
                              DeliveryPolicy(base_delay=timedelta(seconds=5)))
        sent = enqueue_incidents(store, ["checkout", "delivery", "returns"])
        slack.down = True
        up_at = T0 + timedelta(minutes=4)
        rate_limited_checked = False
        for _ in range(200):
            if clock.now() >= up_at and slack.down:
                slack.down = False
                slack.rate_limit(times=2, retry_after=40)
            report = worker.deliver_due()
            if report.errors and any("429" in e for e in report.errors):
                limited = [n for n in store.notifications("pending")
                           if "429" in (n.last_error or "")]
                assert limited and all(n.next_attempt_at >= clock.now() + timedelta(seconds=40)
                                       for n in limited)
                rate_limited_checked = True
            pending = store.notifications("pending")
            if not pending:
                break
            # jump to the next retry (later notifications of an incident wait for it)
            clock.set(min(n.next_attempt_at for n in pending
                          if n.next_attempt_at > clock.now()))
        assert rate_limited_checked
        assert store.outbox_counts() == {"pending": 0, "sent": len(sent), "dead": 0,
                                         "suppressed": 0}
        assert max(n.attempts for n in store.notifications("sent")) >= 4  # it was down a while
        assert_delivered_exactly_once_in_order(slack, sent)


def test_kill_9_mid_delivery_then_restart_delivers_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "cxmon.db"
    with SlackServer() as slack:
        config = tmp_path / "cxmon.yaml"
        config.write_text(f"""
store: sqlite:///{db}
sources:
  shop: {{type: demo, seed: 7}}
metrics:
  - {{name: complaints, source: shop, query: complaints, interval: 1h, timestamp: ts,
     split_by: [journey], value: complaints}}
alerting:
  route: {{receiver: slack}}
  receivers:
    - name: slack
      slack: {{channel: "#cx-ops", token: "${{SLACK_BOT_TOKEN}}", api_url: "{slack.api_url}"}}
""")
        with Store.open(f"sqlite:///{db}") as store:
            sent = enqueue_incidents(store, ["checkout", "delivery", "returns", "stores"])
        slack.stall_on(7)  # an update, posted in its incident's thread
        # ``-m`` from the checkout: the code under test, whatever the venv's install points at
        cmd = [sys.executable, "-m", "monitor.cli", "alerts", "deliver", "-c", str(config),
               "--until-empty", "--every", "0.05", "--log-level", "warning"]
        env = {**os.environ, "SLACK_BOT_TOKEN": TOKEN}
        first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
        try:
            assert slack.stalled.wait(60), "delivery never reached the 7th message"
            first.kill()  # SIGKILL, mid-call: Slack has the message, cxmon has no ts for it
        finally:
            first.wait(30)
        slack.release()
        assert first.returncode == -9
        assert len(slack.messages) == 7

        with Store.open(f"sqlite:///{db}") as store:
            counts = store.outbox_counts()
        assert counts["sent"] == 6 and counts["pending"] == len(sent) - 6

        second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 0, second.stdout + second.stderr
        assert TOKEN not in second.stdout + second.stderr
        with Store.open(f"sqlite:///{db}") as store:
            assert store.outbox_counts() == {"pending": 0, "sent": len(sent), "dead": 0,
                                         "suppressed": 0}
        assert slack.calls("conversations.replies") == 1  # the unknown outcome was looked up
        assert_delivered_exactly_once_in_order(slack, sent)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failed_delivery_is_logged_once_with_a_clear_reason(tmp_path: Path, caplog) -> None:
    """Slack unreachable, a webhook answering an HTML error page: one log line each, saying
    why, never the token, the webhook's path or the HTML."""
    import logging

    import httpx

    from alerts.notifiers.config import WebhookReceiverConfig
    from alerts.notifiers.webhook import WebhookNotifier

    caplog.set_level(logging.WARNING)  # cxmon's CLI keeps HTTP clients' INFO lines off
    port = _closed_port()
    store = Store.open(f"sqlite:///{tmp_path / 'o.db'}")
    html = "<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
    hook = WebhookNotifier("hook", WebhookReceiverConfig(url="https://hooks.example.com/T0/SECRETPATH"),
                           client=httpx.Client(transport=httpx.MockTransport(
                               lambda _r: httpx.Response(502, text=html))))
    notifiers = {
        "slack": SlackNotifier("slack", SlackReceiverConfig(
            token=TOKEN, channel="#cx", api_url=f"http://127.0.0.1:{port}/api/")),
        "hook": hook,
    }
    with store.transaction() as tx:
        tx.enqueue([Notification("a|0", "slack", "a", payload("a", 0)),
                    Notification("b|0", "hook", "b", payload("b", 0))], T0)
    report = OutboxWorker(store, notifiers, FakeClock(T0)).deliver_due()
    assert report.retried == 2
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2, lines
    slack_line = next(line for line in lines if " to slack " in line)
    assert slack_line.endswith(f": slack chat.postMessage: connection refused (127.0.0.1:{port})")
    hook_line = next(line for line in lines if " to hook " in line)
    assert hook_line.endswith(": webhook hook: HTTP 502 Bad Gateway")
    text = caplog.text
    assert TOKEN not in text and "SECRETPATH" not in text and "<html" not in text
    store.close()


def test_deliver_until_empty_exits_1_when_it_dead_lettered(tmp_path: Path) -> None:
    """``cxmon alerts deliver --until-empty`` from cron exited 0 after dead-lettering a
    notification (here: its receiver was removed from the config), unlike ``run --once``."""
    from typer.testing import CliRunner

    from monitor.cli import app

    db = tmp_path / "cxmon.db"
    config = tmp_path / "cxmon.yaml"
    config.write_text(f"""
store: sqlite:///{db}
sources: {{s: {{type: sql, url: "sqlite://"}}}}
metrics: [{{name: m, source: s, value: v}}]
alerting:
  route: {{receiver: console}}
  receivers: [{{name: console, console: {{format: json}}}}]
""")
    # a row for a receiver this config lacks is left to another worker for a while ...
    with Store.open(f"sqlite:///{db}") as store, store.transaction() as tx:
        tx.enqueue([Notification("k|opened|t|gone", "gone", "k", {"n": 1})],
                   datetime.now(UTC))
    out = CliRunner().invoke(app, ["alerts", "deliver", "-c", str(config), "--until-empty",
                                   "--every", "0.01"])
    assert out.exit_code == 0, out.output
    assert "1 notification(s) for receivers not in this config (gone) left pending" in out.output
    # ... and dead-lettered once no worker took it for `orphan_after` (10 minutes)
    with Store.open(f"sqlite:///{db}") as store, store.transaction() as tx:
        tx.enqueue([Notification("k2|opened|t|gone", "gone", "k2", {"n": 2})],
                   datetime.now(UTC) - timedelta(minutes=11))
    out = CliRunner().invoke(app, ["alerts", "deliver", "-c", str(config), "--until-empty",
                                   "--every", "0.01"])
    assert out.exit_code == 1, out.output
    assert "1 notification(s) dead-lettered" in out.output
    with Store.open(f"sqlite:///{db}") as store:
        assert store.outbox_counts()["dead"] == 1
