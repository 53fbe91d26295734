"""Console notifier: incidents printed with rich (or one JSON line each), for the demo and for
running cxmon in a terminal or under a log collector."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from alerts.notifiers.base import Notifier

_COLOURS = ((75, "bold red"), (50, "red"), (25, "yellow"), (0, "cyan"))


def severity_colour(severity: int) -> str:
    """Colour for a severity 0-100."""
    return next(colour for floor, colour in _COLOURS if severity >= floor)


class ConsoleNotifier(Notifier):
    """Prints each notification; ``format="json"`` prints one JSON object per line."""

    def __init__(self, console: Console | None = None, *, format: str = "rich") -> None:
        self.console = console or Console()
        self.format = format

    def send(self, payload: Mapping[str, Any]) -> None:
        if self.format == "json":
            self.console.print_json(json.dumps(payload, default=str), indent=None)
            return
        self.console.print(render_panel(payload))


def render_panel(payload: Mapping[str, Any]) -> Panel:
    """A rich panel: one row per anomaly with value, expected, band, change and severity."""
    severity = int(payload.get("severity", 0))
    status = payload.get("status", "firing")
    colour = "green" if status == "resolved" else severity_colour(severity)
    table = Table(expand=True, show_edge=False, pad_edge=False)
    for col, justify in (
        ("series", "left"),
        ("time (UTC)", "left"),
        ("value", "right"),
        ("expected", "right"),
        ("band", "right"),
        ("change", "right"),
        ("sev", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for a in payload.get("anomalies", []):
        table.add_row(
            a["series"],
            str(a["timestamp"])[:16].replace("T", " "),
            _num(a["value"]),
            _num(a["expected"]),
            f"{_num(a['lower'])} – {_num(a['upper'])}",
            _pct(a.get("change")),
            f"[{severity_colour(int(a['severity']))}]{a['severity']}[/]",
        )
    verb = "RESOLVED" if status == "resolved" else ("UPDATE" if payload.get("update") else "FIRING")
    title = f"[{colour}]{verb}[/] sev {severity} · {payload.get('title', '')}"
    subtitle = payload.get("runbook") or payload.get("incident_key", "")
    return Panel(table, title=title, subtitle=str(subtitle), border_style=colour)


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    v = float(value)
    if abs(v) >= 100 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:.3f}"


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value) * 100:+.0f}%"
