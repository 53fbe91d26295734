"""The console notifier: one box per notification, titled FIRING, UPDATE, REMINDER or
RESOLVED, so a repeat_interval reminder is not mistaken for news."""

from __future__ import annotations

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
    assert "REMINDER (open since 2026-01-27 11:00 UTC) sev" in reminder
    assert "UPDATE" not in reminder and "FIRING" not in reminder
    assert "RESOLVED sev" in title({**base, "status": "resolved", "anomalies": [],
                                    "resolved_at": "2026-01-27T15:00:00+00:00"})
