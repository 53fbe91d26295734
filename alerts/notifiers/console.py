"""Console notifier: incidents printed with rich (or one JSON line each), for the demo and for
running cxmon in a terminal or under a log collector."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

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
    body: RenderableType
    anomalies = payload.get("anomalies", [])
    if anomalies:
        body = _anomaly_table(anomalies, payload.get("group") or {})
        more = int(payload.get("anomalies_total", len(anomalies))) - len(anomalies)
        if more > 0:
            table = body
            table.caption = f"... and {more} more anomalies"
    else:
        since = str(payload.get("opened_at", ""))[:16].replace("T", " ")
        until = str(payload.get("resolved_at") or "")[:16].replace("T", " ")
        body = Text(f"back to normal; open from {since} to {until} UTC")
    verb = "RESOLVED" if status == "resolved" else ("UPDATE" if payload.get("update") else "FIRING")
    title = f"[{colour}]{verb}[/] sev {severity} · {payload.get('title', '')}"
    subtitle = payload.get("runbook") or payload.get("incident_key", "")
    return Panel(body, title=title, subtitle=str(subtitle), border_style=colour)


def _anomaly_table(anomalies: list[Mapping[str, Any]], group: Mapping[str, str]) -> Table:
    """One row per anomaly; the series is shown as metric + the labels the title lacks."""
    table = Table(expand=True, show_edge=False, pad_edge=False)
    one_metric = len({a.get("metric") for a in anomalies}) == 1
    table.add_column("where" if one_metric else "metric · where", overflow="fold", ratio=1)
    table.add_column("UTC", no_wrap=True)
    for col in ("value", "expected", "band", "change", "sev"):
        table.add_column(col, justify="right", no_wrap=True)
    for a in anomalies:
        labels = a.get("labels") or {}
        where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())
                          if k not in group and k != "team") or "all"
        table.add_row(
            where if one_metric else f"{a.get('metric', a['series'])} · {where}",
            str(a["timestamp"])[5:16].replace("T", " "),
            _num(a["value"]),
            _num(a["expected"]),
            f"{_num(a['lower'])}–{_num(a['upper'])}",
            _pct(a.get("change")),
            f"[{severity_colour(int(a['severity']))}]{a['severity']}[/]",
        )
    return table


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
