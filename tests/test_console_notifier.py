"""The console notifier: one box per notification, titled FIRING, UPDATE or RESOLVED; a
repeat_interval reminder is one line starting REMINDER, so it is not mistaken for news."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from alerts.notifiers.console import ConsoleNotifier
from tests.test_slack import PAYLOAD


def printed(payload: dict[str, Any]) -> str:
    console = Console(width=160, record=True, color_system=None)
    ConsoleNotifier(console).send(payload)
    return console.export_text()


def title(payload: dict[str, Any]) -> str:
    return printed(payload).splitlines()[0]


def test_titles_tell_firing_update_reminder_and_resolved_apart() -> None:
    base = {**PAYLOAD, "opened_at": "2026-01-27T11:00:00+00:00"}
    assert "FIRING sev" in title({**base, "update": False})
    assert "UPDATE sev" in title({**base, "update": True})
    reminder = title({**base, "update": True, "repeat": True})  # alerts.grouping's reminder
    assert reminder == ("REMINDER journey=checkout · sev 82 critical · open since "
                        "2026-01-27 11:00 UTC")
    assert "UPDATE" not in reminder and "FIRING" not in reminder
    assert "RESOLVED sev" in title({**base, "status": "resolved", "anomalies": [],
                                    "resolved_at": "2026-01-27T15:00:00+00:00"})


def test_one_set_of_severity_names_on_every_surface() -> None:
    from alerts.blocks import render_message
    from alerts.matchers import parse_matcher
    from alerts.routing import alert_labels
    from dashboards.exporter import SEVERITY_BANDS, severity_band
    from monitor.model import SEVERITY_LEVELS

    assert [n for _, n in SEVERITY_LEVELS] == ["critical", "high", "medium", "low"]
    assert SEVERITY_BANDS == ("low", "medium", "high", "critical")
    for severity, name in ((3, "low"), (35, "medium"), (60, "high"), (80, "critical")):
        payload = {**PAYLOAD, "severity": severity}
        labels = alert_labels({"journey": "checkout"}, None, severity)
        assert labels["severity"] == name  # what routes, silences and inhibit rules match
        assert parse_matcher(f'severity="{name}"').matches(labels)
        assert f"sev {severity} {name} ·" in title(payload)  # the console
        assert render_message(payload)["text"].endswith(f" · sev {severity} {name}")  # Slack
        assert severity_band(severity) == name  # Prometheus


def test_a_no_data_anomaly_reads_as_silence_not_as_a_value() -> None:
    """The metric-level no-data anomaly carries the silence length as its value and the
    timeout as its band; printed as KPI numbers ("9 vs expected 0") it would mislead."""
    from alerts.blocks import render_message

    silent = {**PAYLOAD["anomalies"][0], "kind": "no_data", "detector": "no_data",
              "value": 9.0, "expected": 0.0, "lower": 0.0, "upper": 3.0, "change": None,
              "last_seen": "2026-01-05T10:15:00+00:00"}
    payload = {**PAYLOAD, "anomalies": [silent]}
    text = printed(payload)
    assert "no data" in text and "silent 9 intervals, data until 01-05 10:15" in text
    assert "0–3" not in text
    slack = json.dumps(render_message(payload))
    assert "*No data*: silent 9 intervals, data until 01-05 10:15" in slack
    assert "Value 9" not in slack


def test_a_late_incident_shows_its_anomalies_though_resolved() -> None:
    """Opened and resolved before its first message (a catch-up after downtime): the one
    message it gets must say what happened, not only "back to normal"."""
    from alerts.blocks import render_message

    late = {**PAYLOAD, "status": "resolved", "late": True, "title": "x: y, already resolved",
            "resolved_at": "2026-01-05T12:00:00+00:00"}
    text = printed(late)
    assert "RESOLVED" in text and "already resolved" in text
    value = PAYLOAD["anomalies"][0]["value"]
    slack = json.dumps(render_message(late))
    assert "Back to normal" in slack and f"Value {value:g}" in slack
    plain = json.dumps(render_message({**late, "late": False}))
    assert f"Value {value:g}" not in plain  # an ordinary resolution: the thread has the rest


def test_a_reminder_is_one_line_not_a_box() -> None:
    """``make demo`` was mostly reminder boxes: a reminder says nothing new, so one line."""
    base = {**PAYLOAD, "opened_at": "2026-01-27T11:00:00+00:00", "update": True}
    reminder = printed({**base, "repeat": True}).splitlines()
    assert reminder == [
        "REMINDER journey=checkout · sev 82 critical · open since 2026-01-27 11:00 UTC"]
    assert len(printed({**base, "update": False}).splitlines()) > 5  # FIRING stays a box


def test_a_root_cause_share_above_one_reads_as_all_of_the_change() -> None:
    """Other leaves moving the other way push a cause's share of the net change above 100 %;
    "138% of change" reads as a bug."""
    from alerts.blocks import render_message

    cause = {"metric": "checkout_dropoff_rate", "elements": [{"channel": "app"}],
             "share": 1.38}
    payload = {**PAYLOAD, "root_cause": [cause]}
    assert "channel=app (all of the change)" in printed(payload)
    assert "138%" not in printed(payload)
    slack = json.dumps(render_message(payload), ensure_ascii=False)
    assert "`channel=app` — all of the change" in slack


def test_boxes_are_wide_enough_for_a_log_file(monkeypatch) -> None:
    """Not a terminal (cron, a log file): 120 columns, not rich's 80 that wraps labels."""
    import io

    from alerts.notifiers import console as console_module

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(console_module.Console, "is_terminal", property(lambda self: False))
    notifier = ConsoleNotifier()
    assert notifier.console.width == console_module.LOG_WIDTH
    shared = console_module.Console()  # the CLI hands its own console to the notifier
    assert ConsoleNotifier(shared).console.width == console_module.LOG_WIDTH
    notifier.console.file = io.StringIO()
    notifier.send(PAYLOAD)
    lines = notifier.console.file.getvalue().splitlines()
    assert max(len(line) for line in lines) > 80
