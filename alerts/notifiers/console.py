"""Console notifier: incidents printed with rich (or one JSON line each), for the demo and for
running cxmon in a terminal or under a log collector."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from alerts.changes import describe
from alerts.display import Names
from alerts.notifiers.base import Notifier
from alerts.numbers import _plain, band, shown, volume_count, volume_text
from monitor.model import severity_name

#: Colour per severity level (:data:`monitor.model.SEVERITY_LEVELS`).
_COLOURS = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def severity_colour(severity: int) -> str:
    """Colour for a severity 0-100."""
    return _COLOURS[severity_name(severity)]


class ConsoleNotifier(Notifier):
    """Prints each notification; ``format="json"`` prints one JSON object per line.

    A ``repeat_interval`` reminder says nothing new, so it is one line, not a box: the boxes
    (FIRING, UPDATE, RESOLVED) stay readable between them."""

    def __init__(self, console: Console | None = None, *, format: str = "rich") -> None:
        self.console = _wide_for_logs(console or Console())
        self.format = format

    def send(self, payload: Mapping[str, Any]) -> None:
        if self.format == "json":
            self.console.print_json(json.dumps(payload, default=str), indent=None)
            return
        if payload.get("repeat") and payload.get("status") != "resolved":
            self.console.print(reminder_line(payload), no_wrap=True, overflow="ellipsis")
            return
        self.console.print(render_panel(payload, width=self.console.width))


def reminder_line(payload: Mapping[str, Any]) -> str:
    """One line for a reminder (still firing, nothing new; rich markup): which incident, how
    bad, open since when; short enough for an 80-column terminal.

    >>> reminder_line({"repeat": True, "severity": 52, "group": {"journey": "checkout"},
    ...                "opened_at": "2026-01-27T11:00:00+00:00"})
    '[red]REMINDER[/] journey=checkout · sev 52 high · open since 2026-01-27 11:00 UTC'
    """
    severity = int(payload.get("severity", 0))
    group = payload.get("group") or {}
    names = Names.from_payload(payload)
    who = names.group(group) or str(payload.get("title", ""))
    opened = payload.get("opened_at")
    since = f" · open since {names.when(opened)}" if opened else ""
    changed = _changed(payload)
    return (f"[{severity_colour(severity)}]REMINDER[/] {escape(who)} · "
            f"sev {severity} {severity_name(severity)}{since}"
            f"{f' · {escape(changed)}' if changed else ''}")


def _changed(payload: Mapping[str, Any]) -> str:
    """What changed since the last message (:func:`alerts.changes.describe`), or ``""``."""
    return describe(payload.get("changes"), payload.get("group"), Names.from_payload(payload))


#: Width of the boxes when stdout is not a terminal (a log file, cron mail, ``| less``),
#: unless COLUMNS says otherwise: rich's 80 wraps label values mid-word ("contac / ts").
LOG_WIDTH = 120


def _wide_for_logs(console: Console) -> Console:
    """``console``, at least ``LOG_WIDTH`` wide when it writes to a file or pipe with no
    width of its own (none given, no COLUMNS)."""
    own_width = getattr(console, "_width", None) is not None
    if not (console.is_terminal or own_width or os.environ.get("COLUMNS")):
        console.width = max(console.width, LOG_WIDTH)
    return console


#: Narrower than this, the table leaves out the volume column: ``where`` would fold to a few
#: letters a line (Slack's lines still say the volume)
VOLUME_MIN_WIDTH = 100


def dismissal(payload: Mapping[str, Any]) -> str:
    """``dismissed as a false alarm by ana`` for a resolution sent because every anomaly was
    marked not a problem (:mod:`alerts.dismiss`), else ``""``.

    >>> dismissal({"dismissed": {"by": "ana", "label": "not_anomaly"}})
    'dismissed as a false alarm by ana'
    """
    d = payload.get("dismissed")
    if not isinstance(d, Mapping):
        return ""
    said = {"not_anomaly": "a false alarm", "expected": "an expected change"}.get(
        str(d.get("label")), "not a problem")
    return f"dismissed as {said} by {d.get('by') or 'someone'}"


def render_panel(payload: Mapping[str, Any], *, width: int | None = None) -> Panel:
    """A rich panel: one row per anomaly with value, its volume (from ``width`` columns on;
    always without a width), expected, band, change and severity."""
    severity = int(payload.get("severity", 0))
    status = payload.get("status", "firing")
    colour = "green" if status == "resolved" else severity_colour(severity)
    body: RenderableType
    anomalies = payload.get("anomalies", [])
    names = Names.from_payload(payload)
    if anomalies:
        body = _anomaly_table(anomalies, payload.get("group") or {}, names,
                              volumes=width is None or width >= VOLUME_MIN_WIDTH)
        more = int(payload.get("anomalies_total", len(anomalies))) - len(anomalies)
        if more > 0:
            table = body
            table.caption = f"... and {more} more anomalies"
        body = root_cause_lines(payload.get("root_cause") or [], body, names)
    else:
        body = Text(f"{dismissal(payload) or 'back to normal'}; open from "
                    f"{names.when(payload.get('opened_at'))} to "
                    f"{names.when(payload.get('resolved_at'))}")
    title = (f"[{colour}]{_verb(payload)}[/] sev {severity} {severity_name(severity)} · "
             f"{payload.get('title', '')}")
    changed = _changed(payload) if status != "resolved" else ""
    if changed:  # an update says first what is new since the last message
        body = Group(Text(f"Update: {changed}", style="bold"), body)
    subtitle = payload.get("runbook") or payload.get("incident_key", "")
    return Panel(body, title=title, subtitle=str(subtitle), border_style=colour)


def _verb(payload: Mapping[str, Any]) -> str:
    """RESOLVED, REMINDER (``repeat_interval``: still firing, nothing new, with when it was
    opened), UPDATE or FIRING.

    >>> _verb({"update": True, "repeat": True, "opened_at": "2026-01-27T11:00:00+00:00"})
    'REMINDER (open since 2026-01-27 11:00 UTC)'
    """
    if payload.get("status") == "resolved":
        return "RESOLVED"
    if payload.get("repeat"):
        opened = payload.get("opened_at")
        return (f"REMINDER (open since {Names.from_payload(payload).when(opened)})" if opened
                else "REMINDER")
    return "UPDATE" if payload.get("update") else "FIRING"


def _anomaly_table(anomalies: list[Mapping[str, Any]], group: Mapping[str, str],
                   names: Names, *, volumes: bool = True) -> Table:
    """One row per anomaly; the series is shown as metric + the labels the title lacks."""
    table = Table(expand=True, show_edge=False, pad_edge=False)
    one_metric = len({a.get("metric") for a in anomalies}) == 1
    table.add_column("where" if one_metric else "metric · where", overflow="fold", ratio=1)
    # the reading zone's name: UTC, or Europe/Berlin (each time's CET/CEST would not fit)
    table.add_column(names.timezone, no_wrap=True)
    volumes = volumes and any(volume_count(a) for a in anomalies)  # a ratio's or mean's
    noun = _volume_header(anomalies)
    for col in ("value", *((noun,) if volumes else ()), "expected", "band", "change", "sev"):
        table.add_column(col, justify="right", no_wrap=True)
    for a in anomalies:
        labels = a.get("labels") or {}
        where = names.where((k, v) for k, v in sorted(labels.items())
                            if k not in group and k != "team") or "all"
        silent = no_data_text(a, names)
        table.add_row(
            where if one_metric else f"{names.metric(a.get('metric', a['series']))} · {where}",
            names.at(a, "%m-%d %H:%M", zone=False),
            "no data" if silent else shown(a, "value"),
            *((_volume_cell(a, noun),) if volumes else ()),
            "–" if silent else shown(a, "expected"),
            "–" if silent else band(a),
            silent or format_change(a.get("change")),
            f"[{severity_colour(int(a['severity']))}]{a['severity']}[/]",
        )
    return table


def _volume_header(anomalies: list[Mapping[str, Any]]) -> str:
    """The volume column's header: what the volumes count when the rows agree (``responses``),
    else ``from`` (then each cell names it): short, so a narrow terminal keeps ``where``."""
    nouns = {str((a.get("format") or {}).get("volume_unit") or "") for a in anomalies
             if volume_count(a)}
    return (nouns.pop() or "from") if len(nouns) == 1 else "from"


def _volume_cell(a: Mapping[str, Any], header: str) -> str:
    """``840`` under a header that names the noun, ``840 calls`` under ``from``; ``–``."""
    if header != "from":
        return volume_count(a) or "–"
    return volume_text(a).removeprefix("from ") or "–"


#: What an alert says for a measure whose change every dimension value shares.
SPREAD_TEXT = "spread over all dimension values alike (no single culprit)"


def mix_text(mix: Mapping[str, Any], names: Names | None = None) -> str:
    """What an alert says for a rate that moved because its volume moved between dimension
    values (:mod:`detectors.mixshift`), not because any value's own rate changed.

    >>> text = mix_text({"dimension": "channel", "value": "web", "share_usual": 0.333,
    ...                  "share_now": 0.667, "rate_usual": 0.5, "rate_overall": 0.367,
    ...                  "rate_now": 0.433, "portion": 1.0})
    >>> for part in text.split(", and "): print(part)
    mix shift: channel=web went from 33% to 67% of the volume
    its usual rate is 0.500 (0.367 overall): 100% of change
    >>> mix_text({"dimension": "channel", "value": "web", "share_usual": 0.2, "share_now": 0.4,
    ...           "rate_usual": 0.5, "rate_overall": 0.3, "portion": 0.9, "also": [
    ...           {"value": "ios", "share_usual": 0.1, "share_now": 0.3, "rate_usual": 0.45}]}
    ...          ).split("; ")[1]
    'also channel=ios 10% → 30% (usual rate 0.450): 90% of change'

    The rates read as the metric's values do (``unit``: percent; ``format``: its unit,
    scale and decimals), as the alert's headline says them:

    >>> mix_text({"dimension": "channel", "value": "cc", "share_usual": 0.2, "share_now": 0.5,
    ...           "rate_usual": 3.4, "rate_overall": 4.1, "format": {"scale_max": 5.0}}
    ...          ).split(", and ")[1]
    'its usual rate is 3.40 / 5 (4.10 / 5 overall)'
    """
    names = names if names is not None else Names()
    portion = mix.get("portion")
    part = f": {format_share(float(portion))}" if isinstance(portion, int | float) else ""
    dim = str(mix.get("dimension"))

    def rate(v: Any) -> str:  # as the metric's values read (the headline's unit and scale)
        return shown({"unit": mix.get("unit"), "format": mix.get("format"), "value": v},
                     "value")

    also = "".join(
        f"; also {names.where([(dim, a.get('value'))])} "
        f"{float(a.get('share_usual') or 0):.0%} → "
        f"{float(a.get('share_now') or 0):.0%} (usual rate {rate(a.get('rate_usual'))})"
        for a in (mix.get("also") or []) if isinstance(a, Mapping))
    return (f"mix shift: {names.where([(dim, mix.get('value'))])} went from "
            f"{float(mix.get('share_usual') or 0):.0%} to {float(mix.get('share_now') or 0):.0%}"
            f" of the volume, and its usual rate is {rate(mix.get('rate_usual'))} "
            f"({rate(mix.get('rate_overall'))} overall){also}{part}")


def root_cause_lines(causes: list[Mapping[str, Any]], body: RenderableType,
                     names: Names | None = None) -> RenderableType:
    """The body with one compact line per measure's root cause above it, e.g.
    ``root cause · checkout_dropoff_rate: channel=app, region=uk (97% of change)``."""
    if not causes:
        return body
    names = names if names is not None else Names()
    lines = Text()
    for rc in causes[:3]:
        where = " + ".join(names.where(e.items()) for e in rc["elements"])
        share = rc.get("share")
        pct = f" ({format_share(share)})" if isinstance(share, int | float) else ""
        if (rc.get("spread") or rc.get("mix")) and not rc["elements"]:
            split = names.where((rc.get("split") or {}).items())
            said = mix_text(rc["mix"], names) if rc.get("mix") else SPREAD_TEXT
            where, pct = (f"{split}: " if split else "") + said, ""
        lines.append("root cause · ", style="bold")
        metric = rc.get("metric", "")
        lines.append(f"{names.metric(metric) if metric else ''}: {where}{pct}\n")
    lines.rstrip()
    return Group(lines, body)


def no_data_text(anomaly: Mapping[str, Any], names: Names | None = None) -> str | None:
    """What a ``no_data`` anomaly means, in words (None for any other anomaly): its value
    and band are a silence length and a timeout, not KPI values, and must not read as such.

    >>> no_data_text({"kind": "no_data", "detector": "no_data", "value": 9.0, "upper": 3.0,
    ...               "last_seen": "2026-11-26T12:00:00+00:00"})
    'silent 9 intervals, data until 11-26 12:00'
    >>> no_data_text({"kind": "no_data", "detector": "default", "value": None, "expected": 133})
    'stopped (last 133)'
    """
    if anomaly.get("kind") != "no_data":
        return None
    seen = (names if names is not None else Names()).clock(anomaly.get("last_seen"), "%m-%d %H:%M")
    if anomaly.get("detector") == "no_data":  # the whole metric (monitor/staleness.py)
        until = f", data until {seen}" if seen else ""
        return f"silent {format_number(anomaly.get('value'))} intervals{until}"
    last = anomaly.get("expected")
    at = f", data until {seen}" if seen else ""
    return f"stopped (last {format_number(last)}{at})" if last is not None else "stopped"


def format_share(share: float, *, short: bool = False) -> str:
    """A root cause's share of the total's change, for humans. Above 100 % (the rest of the
    leaves moved the other way, as noise does) it is "all of the change": "138 %" reads as
    an error. ``short`` where a heading already says "share of the change".

    >>> format_share(0.914), format_share(1.38), format_share(-0.2)
    ('91% of change', 'all of the change', 'against the change')
    >>> format_share(0.914, short=True), format_share(1.38, short=True)
    ('91%', 'all')
    """
    if share > 1.0:
        return "all" if short else "all of the change"
    if share < 0.0:
        return "against" if short else "against the change"
    return f"{share * 100:.0f}%" + ("" if short else " of change")


def format_number(value: Any, unit: str | None = None) -> str:
    """A KPI value for humans: thousands separated, whole from 100 up, else 3 significant
    digits (a forecast of 18.221 complaints reads as 18.2), tiny values to 3 decimals; with
    ``unit="percent"`` (a ratio metric) the same digits of the value times 100, and ``%``.

    >>> [format_number(v) for v in (12345.6, 140.0, 41.0, 95.564, 18.221, 3.533, 0.21, 0.004)]
    ['12,346', '140', '41', '95.6', '18.2', '3.53', '0.210', '0.004']
    >>> [format_number(v, "percent") for v in (0.587, 0.0123, 1.0, None)]
    ['58.7%', '1.23%', '100%', '–']
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "percent":
        return f"{format_number(float(value) * 100)}%"
    return _plain(float(value))


def format_change(value: Any) -> str:
    """A relative change as a signed percentage (n/a when unknown)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value) * 100:+.0f}%"
