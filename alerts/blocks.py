"""Slack Block Kit rendering of a notification payload. Pure: a dict in, a dict out.

:func:`render_message` returns ``{"text", "color", "blocks"}``: ``text`` is the notification
fallback, ``color`` the severity bar (the blocks are sent inside one attachment, the only way
Slack draws a colour), ``blocks`` the message. Slack's limits are respected (50 blocks,
3,000 characters per text, 150 per header, 2,000 per button value); anything cut says so.

Root cause (``payload["root_cause"]``, optional; made by ``monitor/incidents.py``) is read in
any of these shapes (``metric`` and per-element ``contributions`` are optional)::

    [{"metric": "m", "elements": [{"channel": "app", "region": "uk"}], "share": 0.78,
      "contributions": [{"element": {...}, "share": 0.78}, ...]}, ...]
    {"root_causes": [{"elements": [...], "score": 0.93, "share": 0.78}, ...]}
    [{"labels": {"channel": "app"}, "share": 0.78}, ...]

Grafana deep link: :func:`dashboards.links.grafana_link` (journey dashboard, the top anomaly's
panel as ``viewPanel``, one ``var-<label>`` per dimension label of the top anomaly), time range
from 6 h before the first anomaly to 1 h after the last one (or the resolution).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from alerts.changes import describe
from alerts.display import Names
from alerts.notifiers import console
from alerts.notifiers.console import (
    SPREAD_TEXT,
    dismissal,
    format_share,
    mix_text,
    no_data_text,
)
from alerts.numbers import band, shown, volume_text
from dashboards.links import grafana_link as dashboard_link
from monitor.model import severity_name

__all__ = [
    "FEEDBACK_ACTIONS",
    "FEEDBACK_CONFIRM",
    "MAX_BLOCKS",
    "MAX_TEXT",
    "escape_mrkdwn",
    "grafana_link",
    "limit_blocks",
    "render_message",
    "root_cause_items",
    "severity_style",
    "summary",
]

MAX_BLOCKS = 50
MAX_TEXT = 3000
MAX_HEADER = 150
MAX_BUTTON_VALUE = 2000
MAX_ROOT_CAUSES = 5
#: The Grafana link's time range around the incident.
LINK_BEFORE = timedelta(hours=6)
LINK_AFTER = timedelta(hours=1)

#: action_id -> (button label, feedback label stored in the ``feedback`` table)
FEEDBACK_ACTIONS: dict[str, tuple[str, str]] = {
    "cxmon_ack": ("Acknowledge", "acknowledged"),
    "cxmon_not_anomaly": ("Not an anomaly", "not_anomaly"),
    "cxmon_expected": ("Expected change", "expected"),
}

#: action_id -> (title, what the click does, confirm label): a confirmation dialog on the
#: buttons that make cxmon alert less (:mod:`detectors.feedback`), so nobody mutes a series
#: by tapping a button whose effect the message does not say. Slack: title 100 characters,
#: text 300, buttons 30.
FEEDBACK_CONFIRM: dict[str, tuple[str, str, str]] = {
    "cxmon_not_anomaly": (
        "Not an anomaly?",
        "Marks these anomalies as a false alarm and resolves the incident wherever it was"
        " sent (PagerDuty too): for 7 days cxmon alerts on these series only for a deviation"
        " about ten times rarer than this one.",
        "Yes, false alarm"),
    "cxmon_expected": (
        "Expected change?",
        "A known cause (a promotion, a release, a planned outage): cxmon alerts on these"
        " series only for a much rarer deviation for the rest of the day, and at this hour of"
        " the week for the next 4 weeks.",
        "Yes, expected"),
}

#: Emoji and colour per severity level (:data:`monitor.model.SEVERITY_LEVELS`).
_STYLES = {
    "critical": (":red_circle:", "#D32F2F"),
    "high": (":large_orange_circle:", "#F57C00"),
    "medium": (":large_yellow_circle:", "#FBC02D"),
    "low": (":large_blue_circle:", "#1E88E5"),
}
_RESOLVED = ("resolved", ":white_check_mark:", "#2E7D32")
_HIDDEN_LABELS = ("team",)


def format_number(value: Any, unit: str | None = None) -> str:
    """:func:`alerts.notifiers.console.format_number` without a signed zero: a value that
    rounds to nothing (-0.0, -0.0001) showed as ``-0`` or ``-0.000%``, a sign people read as
    a real fall.

    >>> format_number(-0.0), format_number(-1e-7, "percent"), format_number(-0.25, "percent")
    ('0', '0.000%', '-25%')
    """
    return _unsigned_zero(console.format_number(value, unit))


def format_change(value: Any) -> str:
    """:func:`alerts.notifiers.console.format_change` with ``0%`` for a change that rounds to
    nothing (``-0%`` and ``+0%`` read as a direction the data does not have).

    >>> format_change(-0.0004), format_change(0.004), format_change(-0.18), format_change(None)
    ('0%', '0%', '-18%', 'n/a')
    """
    return _unsigned_zero(console.format_change(value))


def _unsigned_zero(text: str) -> str:
    """``text`` without its sign when no digit of it is non-zero."""
    if text[:1] in "+-" and text[1:2].isdigit() and not any(c in "123456789" for c in text):
        return text[1:]
    return text


def severity_style(severity: int) -> tuple[str, str, str]:
    """(name, emoji, hex colour) for a severity 0-100."""
    name = severity_name(severity)
    return (name, *_STYLES[name])


def render_message(
    payload: Mapping[str, Any],
    *,
    grafana_url: str | None = None,
    runbook: str | None = None,
    feedback: bool = True,
    closed: bool = False,
) -> dict[str, Any]:
    """Blocks for one notification. ``closed=True`` renders the incident's first message as
    resolved (it is edited in place when the incident resolves): no feedback buttons."""
    resolved = payload.get("status") == "resolved" or closed
    severity = int(payload.get("severity") or 0)
    name, emoji, colour = _RESOLVED if resolved else severity_style(severity)
    verb = "Resolved" if resolved else ("Update" if payload.get("update") else "Anomaly")
    names = Names.from_payload(payload)
    head, numbers, tail = summary(payload)
    # a reminder's header says so: "Update" over "no change since the last message" read as
    # if something had changed, and the header is what a channel's scroll-back shows
    said = "Reminder" if payload.get("repeat") and not resolved else verb
    header = _header(f"{emoji} {said} · {head}", tail)
    rank = f"peak sev {severity}" if resolved else f"sev {severity} {name}"
    changed = "" if resolved else describe(payload.get("changes"), payload.get("group"), names)
    lead = f"{'Reminder' if payload.get('repeat') else verb}: {changed} · " if changed \
        else f"{verb}: "  # what is new first: all a phone's preview may show
    text = f"{lead}{head}{f' ({numbers})' if numbers else ''}{tail} · {rank}"

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(header)},
    ]
    if changed:  # an update says first what is new since the last message
        blocks.append({"type": "context", "elements": [_mrkdwn(
            _changes_line(payload, changed))]})
    anomalies = list(payload.get("anomalies") or [])
    metrics = sorted({str(a.get("metric")) for a in anomalies if a.get("metric")}) or sorted(
        {str(m.get("metric")) for m in payload.get("measures") or []
         if isinstance(m, Mapping) and m.get("metric")})
    journey = payload.get("journey")
    fields = [
        # resolved: the severity is the incident's peak, not a current level
        f"*Severity*\n{emoji} {'peak ' if resolved else ''}{severity} · {name}",
        f"*Journey*\n{names.value('journey', journey) if journey else 'all'}",
        f"*Metric*\n{', '.join(names.metric(m) for m in metrics) or 'n/a'}",
        f"*Since*\n{names.when(payload.get('opened_at'))}",
    ]
    blocks.append({"type": "section", "fields": [_mrkdwn(f, 2000) for f in fields]})

    if payload.get("status") == "resolved":
        opened, until = payload.get("opened_at"), payload.get("resolved_at")
        blocks.append(_section(
            f"Back to normal. Open from {names.when(opened)} to {names.when(until)}"
            f"{_duration(opened, until)}; this thread is closed."))
    if anomalies and (payload.get("status") != "resolved" or payload.get("late")):
        group = payload.get("group") or {}
        # the worst series' other hours belong to its block: listed as "Related anomalies"
        # they read as a second problem, when it was the same series an hour earlier
        mine = _series_of(top := anomalies[0], group, names)
        same = [a for a in anomalies[1:] if _series_of(a, group, names) == mine]
        related = [a for a in anomalies[1:] if _series_of(a, group, names) != mine]
        worst = _top_anomaly(top, group, names)
        total = int(payload.get("anomalies_total") or len(anomalies))
        if same:  # anomalies beyond the payload's may be of this series too: "at least"
            least = "at least " if total > len(anomalies) else ""
            worst += (f"\nWorst of {least}{len(same) + 1} anomalies of this series,"
                      f" {_hours([top, *same], names)} {_zone_name([top], names)}")
        blocks.append(_section(worst))
        causes = root_cause_items(payload.get("root_cause"))
        spread = spread_items(payload.get("root_cause"))
        mixes = mix_items(payload.get("root_cause"))
        if causes or spread or mixes:
            lines = [f"• {f'*{names.metric(metric)}*: ' if metric else ''}"
                     f"{_labels_md(labels, names)}{_share(share)}"
                     for metric, labels, share in causes]
            lines += [f"• *{names.metric(metric)}*: "
                      f"{_labels_md(split, names) + ' ' if split else ''}{SPREAD_TEXT}"
                      for metric, split in spread]
            lines += [f"• *{names.metric(metric)}*: "
                      f"{_labels_md(split, names) + ' ' if split else ''}"
                      f"{mix_text(mix, names)}" for metric, split, mix in mixes]
            # escaped once, by _section: escaping here too showed "&amp;" for "&"
            blocks.append(_section("*Root cause*: where the change came from\n"
                                   + "\n".join(lines)))
        hidden = total - len(anomalies)
        if related or hidden > 0:
            lines = _related_lines(related, group, names)
            if hidden > 0:
                # anomalies, not lines: the lines are one per series ("3 anomalies 13:00-15:00")
                lines.append(f"… and {hidden} more {'anomaly' if hidden == 1 else 'anomalies'}"
                             " not shown")
            order = _measure_order(payload.get("measures"), names)
            blocks.append(_section(f"*Related anomalies* ({total - 1 - len(same)}, times "
                                   f"{_zone_name(anomalies, names)})\n"
                                   f"{order}"
                                   + "\n".join(lines)))

    buttons = _buttons(payload, grafana_url, runbook, feedback and not resolved)
    if buttons:
        blocks.append({"type": "actions", "block_id": "cxmon_actions", "elements": buttons})
    context = f"cxmon · incident `{payload.get('incident_key', '')}`"
    if closed and payload.get("status") != "resolved":
        context += " · resolved, see thread"
    blocks.append({"type": "context", "elements": [_mrkdwn(context)]})
    return {"text": _cut(escape_mrkdwn(text), MAX_TEXT), "color": colour,
            "blocks": limit_blocks(blocks)}


def _header(head: str, tail: str) -> str:
    """The header within Slack's 150 characters: when too long (display names are longer
    than identifiers), the other measures (``; also …``) go first, then the end is cut."""
    if len(head + tail) > MAX_HEADER and "; also " in tail:
        tail = tail[:tail.rindex("; also ")]
    return _cut(head + tail, MAX_HEADER)


def _changes_line(payload: Mapping[str, Any], changed: str) -> str:
    """``*Update* since 10:05 UTC: severity 35 → 48 (high); ...`` (a reminder says so)."""
    since = (payload.get("changes") or {}).get("since")
    when = f" since {Names.from_payload(payload).when(since)}" if since else ""
    return f"*{'Reminder' if payload.get('repeat') else 'Update'}*{when}: {changed}"


def summary(payload: Mapping[str, Any]) -> tuple[str, str, str]:
    """(what moved and how much, its numbers, where and why): the header and the notification
    text, so the preview on a phone says which measure moved, how much, in which journey and
    dimension values, and which values drove it, without opening the message.

    >>> head, numbers, tail = summary({"journey": "checkout", "group": {"journey": "checkout"},
    ...     "anomalies": [{"metric": "checkout_dropoff_rate", "value": 0.587, "expected": 0.335,
    ...                    "labels": {"channel": "app", "region": "uk"}, "change": 0.752}]})
    >>> head + tail
    'checkout journey · checkout_dropoff_rate +75% in channel=app, region=uk'
    >>> numbers
    '0.587 vs 0.335 expected'
    >>> summary({"journey": "support", "group": {"journey": "support"}, "anomalies": [
    ...     {"metric": "csat", "labels": {}, "value": 3.533, "expected": 4.302, "change": -0.18}],
    ...     "root_cause": [{"metric": "csat", "elements": [{"channel": "contact-centre"}]}]})
    ('support journey · csat -18%', '3.53 vs 4.30 expected', ', driven by channel=contact-centre')

    With display names (``payload["display"]``, :mod:`alerts.display`) it reads them:

    >>> head, numbers, tail = summary({"journey": "checkout", "group": {"journey": "checkout"},
    ...     "anomalies": [{"metric": "checkout_dropoff_rate", "value": 0.587, "expected": 0.335,
    ...                    "labels": {"channel": "app", "region": "uk"}, "change": 0.752}],
    ...     "display": {"metrics": {"checkout_dropoff_rate": "Checkout drop-off rate"},
    ...                 "labels": {"channel": "Channel", "region": "Region"},
    ...                 "values": {"channel": {"app": "Mobile app"}, "region": {"uk": "UK"},
    ...                            "journey": {"checkout": "Checkout"}}}})
    >>> head + tail
    'Checkout journey · Checkout drop-off rate +75% in Channel: Mobile app, Region: UK'
    """
    names = Names.from_payload(payload)
    group = payload.get("group") or {}
    journey = payload.get("journey")
    if journey and set(group) <= {"journey"}:
        scope = f"{names.value('journey', journey)} journey"
    else:
        scope = names.where(group.items()) or "all series"
    anomalies = list(payload.get("anomalies") or [])
    if payload.get("status") == "resolved" and (said := dismissal(payload)):
        return f"{scope} · {said}", "", ""
    if payload.get("status") == "resolved" and not anomalies:
        measures = [names.metric(m.get("metric")) for m in payload.get("measures") or []
                    if isinstance(m, Mapping) and m.get("metric")]
        took = _duration(payload.get("opened_at"), payload.get("resolved_at")).strip(" ()")
        return (f"{scope}{' · ' + ', '.join(measures) if measures else ''} back to normal",
                "", f" after {took}" if took else "")
    if not anomalies:
        return f"{scope} · {payload.get('title') or 'incident'}", "", ""
    top = anomalies[0]
    metric = str(top.get("metric") or top.get("series") or "")
    title = names.metric(metric)
    where = _where(top, group, names)
    loc = "" if where == "total" else f" in {where}"
    others = sorted({str(a.get("metric")) for a in anomalies[1:] if a.get("metric")} - {metric})
    also = f"; also {', '.join(names.metric(m) for m in others)}" if others else ""
    silent = no_data_text(top, names)
    if silent:
        return f"{scope} · {title} has no data", silent, f"{loc}{also}"
    cause = next((labels for m, labels, _ in root_cause_items(payload.get("root_cause"))
                  if m in (None, metric)), None)
    said = names.where(sorted((cause or {}).items()))
    driven = f", driven by {said}" if said and said != where else ""
    raw = payload.get("root_cause")
    mix = next((m for name, _, m in mix_items(raw) if name in ("", metric)), None)
    if not driven and mix is not None:  # the volume moved between values, not their rates
        moved = names.where([(str(mix.get("dimension")), mix.get("value"))])
        driven = (f", a mix shift: {moved} went from"
                  f" {float(mix.get('share_usual') or 0):.0%} to"
                  f" {float(mix.get('share_now') or 0):.0%} of the volume")
    elif not driven and any(name in ("", metric) for name, _ in spread_items(raw)):
        driven = ", on every dimension value alike"
    # no volume here: the header puts these in parentheses, the worst-anomaly line says it
    numbers = f"{shown(top, 'value')} vs {shown(top, 'expected')} expected"
    return (f"{scope} · {title} {format_change(top.get('change'))}", numbers,
            f"{loc}{driven}{also}")


def grafana_link(payload: Mapping[str, Any], base_url: str) -> str | None:
    """Deep link to the top anomaly's panel around the incident. The URL itself comes from
    :func:`dashboards.links.grafana_link`, the one place that knows the dashboards' uids,
    panel ids and template variables, so alerts and dashboards never drift apart."""
    anomalies = list(payload.get("anomalies") or [])
    times = [t for t in (_parse(a.get("timestamp")) for a in anomalies) if t is not None]
    for key in ("opened_at", "resolved_at"):
        if (t := _parse(payload.get(key))) is not None:
            times.append(t)
    if not times:
        return None
    # a resolution carries no anomalies: its link opens the first measure's panel over the
    # whole incident (the journey's whole dashboard said nothing about what recovered)
    measures = [m for m in payload.get("measures") or [] if isinstance(m, Mapping)]
    top = anomalies[0] if anomalies else {"metric": measures[0].get("metric")} if measures \
        else {}
    return dashboard_link(
        base_url, payload.get("journey") or None, metric=top.get("metric") or None,
        labels={str(k): str(v) for k, v in (top.get("labels") or {}).items()},
        start=min(times) - LINK_BEFORE, end=max(times) + LINK_AFTER,
    )


def root_cause_items(raw: Any) -> list[tuple[str | None, dict[str, str], float | None]]:
    """Normalise the payload's root cause to ``[(metric, labels, share), ...]``, best first;
    a root cause made of several dimension-value combinations gives one item each."""
    if isinstance(raw, Mapping):
        raw = raw.get("root_causes") or raw.get("top") or raw.get("items") or []
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        return []
    out: list[tuple[str | None, dict[str, str], float | None]] = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        metric = str(item["metric"]) if item.get("metric") else None
        found = (item.get("elements") or item.get("labels") or item.get("dimensions")
                 or item.get("values") or [])
        elements = [dict(e) for e in (found if isinstance(found, list) else [found])
                    if isinstance(e, Mapping) and e]
        shares = {_key(c.get("element")): c.get("share") for c in item.get("contributions") or []
                  if isinstance(c, Mapping)}
        for el in elements:
            share = item.get("share", item.get("contribution")) if len(elements) == 1 \
                else shares.get(_key(el))
            labels = {str(k): str(v) for k, v in el.items()}
            out.append((metric, labels, float(share) if isinstance(share, int | float) else None))
    return out[:MAX_ROOT_CAUSES]


def spread_items(raw: Any) -> list[tuple[str, dict[str, str]]]:
    """``[(metric, split values)]`` of the payload's root causes that are a change spread
    over every dimension value (``"spread": true``, no elements)."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        return []
    return [(str(item.get("metric") or ""),
             {str(k): str(v) for k, v in (item.get("split") or {}).items()})
            for item in raw if isinstance(item, Mapping) and item.get("spread")
            and not item.get("elements")][:MAX_ROOT_CAUSES]


def mix_items(raw: Any) -> list[tuple[str, dict[str, str], Mapping[str, Any]]]:
    """``[(metric, split values, mix)]`` of the payload's root causes that are a mix shift
    (``"mix": {...}``: the volume moved between dimension values, not their rates)."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        return []
    return [(str(item.get("metric") or ""),
             {str(k): str(v) for k, v in (item.get("split") or {}).items()}, item["mix"])
            for item in raw if isinstance(item, Mapping)
            and isinstance(item.get("mix"), Mapping)][:MAX_ROOT_CAUSES]


def _key(element: Any) -> str:
    return json.dumps(element, sort_keys=True, default=str)


# -- pieces ---------------------------------------------------------------------------------


def _top_anomaly(a: Mapping[str, Any], group: Mapping[str, Any], names: Names) -> str:
    where = _where(a, group, names)
    title = names.metric(a.get("metric", a.get("series", "")))
    silent = no_data_text(a, names)
    if silent:
        return (f"*{title}* · {where}"
                f" at {names.at(a)}\n"
                f"*No data*: {silent} · sev {a.get('severity', 0)}")
    return (
        f"*{title}* · {where}"
        f" at {names.at(a)}\n"
        f"*Value {shown(a, 'value')}*{_volume(a)} vs expected "
        f"{shown(a, 'expected')} (band {band(a)}),"
        f" *{format_change(a.get('change'))}*{_points(a)} · sev {a.get('severity', 0)}"
    )


def _value(a: Mapping[str, Any]) -> str:
    """The observed value and, when known, its volume: ``3.10 / 5 (from 14 responses)``."""
    return f"{shown(a, 'value')}{_volume(a)}"


def _volume(a: Mapping[str, Any]) -> str:
    """`` (from 14 responses)`` behind a ratio or mean; ``""`` without a volume."""
    vol = volume_text(a)
    return f" ({vol})" if vol else ""


def _points(a: Mapping[str, Any]) -> str:
    """A rate's change in percentage points, after its relative change: "drop-off +75%"
    of a rate read as 75 points more, when it went from 33.4% to 58.7% (+25.3 pts).

    >>> _points({"unit": "percent", "value": 0.587, "expected": 0.334})
    ' (+25.3 pts)'
    >>> _points({"unit": "percent", "value": 0.2, "expected": 0.2}), _points({"value": 3.0})
    (' (0 pts)', '')
    """
    value, expected = a.get("value"), a.get("expected")
    if a.get("unit") != "percent" or not all(isinstance(v, int | float)
                                             for v in (value, expected)):
        return ""
    diff = format_number(float(value) - float(expected), "percent").removesuffix("%")
    signed = diff.startswith("-") or not diff.strip("0.")  # a fall, or nothing to sign
    return f" ({diff if signed else '+' + diff} pts)"


def _related_lines(related: list[Mapping[str, Any]], group: Mapping[str, Any],
                   names: Names | None = None) -> list[str]:
    """One line per series (metric and dimension values), its worst anomaly first: an
    incident of several hours listed every hour of every series, a wall of near-identical
    lines on a phone. A series with several anomalies says how many and over which hours.

    >>> a = {"metric": "csat", "labels": {"channel": "cc"}, "value": 3.389, "expected": 4.247,
    ...      "change": -0.2, "severity": 48, "timestamp": "2026-01-30T17:00:00+00:00"}
    >>> _related_lines([a, {**a, "timestamp": "2026-01-30T13:00:00+00:00"},
    ...                 {**a, "timestamp": "2026-01-31T01:00:00+00:00"}], {})
    ['• csat · channel=cc: 3.39 vs 4.25 (-20%), sev 48, 17:00; 3 anomalies 01-30 13:00–01-31 01:00']
    """
    names = names if names is not None else Names()
    series: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for a in related:
        series.setdefault(_series_of(a, group, names), []).append(a)
    out = []
    for found in series.values():
        line = _related_line(found[0], group, names)
        if len(found) > 1:
            line += f"; {len(found)} anomalies {_hours(found, names)}"
        out.append(line)
    return out


def _series_of(a: Mapping[str, Any], group: Mapping[str, Any], names: Names
               ) -> tuple[str, str]:
    """(metric, where): one series as the message names it."""
    return str(a.get("metric", a.get("series", ""))), _where(a, group, names)


def _hours(found: Sequence[Mapping[str, Any]], names: Names) -> str:
    """First to last anomaly time on the reading clock, ``13:00–15:00`` (with dates when
    the local days differ)."""
    times = sorted(t for a in found if (t := names.local(a.get("timestamp", ""))))
    if not times:
        return ""
    fmt = "%H:%M" if times[0].date() == times[-1].date() else "%m-%d %H:%M"
    return f"{times[0].strftime(fmt)}–{times[-1].strftime(fmt)}"


def _zone_name(found: Sequence[Mapping[str, Any]], names: Names) -> str:
    """The zone the times of ``found`` read in: ``UTC``, ``CET``, ``CEST``."""
    first = names.local(found[0].get("timestamp", "")) if found else None
    return (first.tzname() if first else None) or "UTC"


def _related_line(a: Mapping[str, Any], group: Mapping[str, Any], names: Names) -> str:
    where = _where(a, group, names)
    title = names.metric(a.get("metric", a.get("series", "")))
    ts = names.at(a, "%H:%M", zone=False)
    silent = no_data_text(a, names)
    if silent:
        return (f"• {title} · {where}: no data, {silent},"
                f" sev {a.get('severity', 0)}, {ts}")
    return (
        f"• {title} · {where}:"
        f" {_value(a)} vs {shown(a, 'expected')}"
        f" ({format_change(a.get('change'))}), sev {a.get('severity', 0)}, {ts}"
    )


def _measure_order(measures: Any, names: Names) -> str:
    """``Moved in this order: a (07:00) → b (09:00)`` when several measures moved."""
    if not isinstance(measures, list) or len(measures) < 2:
        return ""
    steps = [f"{names.metric(m.get('metric'))} ({names.clock(m.get('first_at', ''))})"
             for m in measures
             if isinstance(m, Mapping)]
    return "Moved in this order: " + " → ".join(steps) + "\n"


def _where(a: Mapping[str, Any], group: Mapping[str, Any], names: Names) -> str:
    """The labels the incident's group does not already say; ``total`` for the roll-up."""
    labels = a.get("labels") or {}
    return names.where((k, v) for k, v in sorted(labels.items())
                       if k not in group and k not in _HIDDEN_LABELS) or "total"


def _buttons(
    payload: Mapping[str, Any], grafana_url: str | None, runbook: str | None, feedback: bool
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    link = grafana_link(payload, grafana_url) if grafana_url else None
    if link:
        out.append({"type": "button", "action_id": "cxmon_grafana", "url": link[:3000],
                    "text": _plain("Open in Grafana")})
    book = payload.get("runbook") or runbook
    if book:
        out.append({"type": "button", "action_id": "cxmon_runbook", "url": str(book)[:3000],
                    "text": _plain("Runbook")})
    if feedback:
        value = _feedback_value(payload)
        for action_id, (label, _) in FEEDBACK_ACTIONS.items():
            button: dict[str, Any] = {"type": "button", "action_id": action_id,
                                      "text": _plain(label), "value": value}
            if action_id == "cxmon_ack":
                button["style"] = "primary"
            if action_id in FEEDBACK_CONFIRM:
                title, said, yes = FEEDBACK_CONFIRM[action_id]
                button["confirm"] = {"title": _plain(title), "text": _plain(said),
                                     "confirm": _plain(yes), "deny": _plain("Cancel")}
            out.append(button)
    return out


def _feedback_value(payload: Mapping[str, Any]) -> str:
    """``{"incident": key, "anomalies": [ids]}``, as many ids as fit Slack's 2,000 chars."""
    ids = [str(a["id"]) for a in payload.get("anomalies") or [] if a.get("id")]
    incident = str(payload.get("incident_key", ""))
    while True:
        value = json.dumps({"incident": incident, "anomalies": ids}, separators=(",", ":"))
        if len(value) <= MAX_BUTTON_VALUE or not ids:
            return value[:MAX_BUTTON_VALUE]
        ids.pop()


def limit_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most 50 blocks: the header and the last two (buttons, context) always stay."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    tail = blocks[-2:]
    keep = blocks[: MAX_BLOCKS - 3]
    dropped = len(blocks) - len(keep) - len(tail)
    note = {"type": "context", "elements": [_mrkdwn(
        f"… {dropped} more blocks not shown (truncated: Slack allows {MAX_BLOCKS} per message)")]}
    return [*keep, note, *tail]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    """A mrkdwn text object, escaped, then cut to ``limit``."""
    return {"type": "mrkdwn", "text": _cut(escape_mrkdwn(text), limit)}


def escape_mrkdwn(text: str) -> str:
    """``&``, ``<`` and ``>`` as Slack's entities. Label values come from the data: a value
    ``<!channel>`` pinged the whole channel and ``<https://x|y>`` became a link.

    >>> escape_mrkdwn("a&b <!channel>")
    'a&amp;b &lt;!channel&gt;'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters; when cut, whole lines are kept where possible
    and the end says how much was left out."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    size = 0
    for k, line in enumerate(lines):
        note = f"… (truncated: {len(lines) - k} more lines)"
        if k and size + len(note) <= limit and size + len(line) + 1 + len(note) > limit:
            return "\n".join([*lines[:k], note])
        size += len(line) + 1
    return text[: limit - 14] + "… (truncated)"


def _labels_md(labels: Mapping[str, str], names: Names) -> str:
    return " ".join(f"`{pair}`" for pair in names.pairs(labels.items()))


def _share(share: float | None) -> str:
    return "" if share is None else f" — {format_share(share)}"


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _duration(start: Any, end: Any) -> str:
    t0, t1 = _parse(start), _parse(end)
    if t0 is None or t1 is None or t1 < t0:
        return ""
    return f" ({_span(int((t1 - t0).total_seconds() // 60))})"


def _span(minutes: int) -> str:
    """A duration as people say it: "76 h 00 min" made the reader divide by 24, and "0 h
    45 min" read as a glitch; minutes are dropped from a day up, where they no longer matter.

    >>> [_span(m) for m in (45, 60, 270, 1920, 4560, 1441)]
    ['45 min', '1 h', '4 h 30 min', '1 d 8 h', '3 d 4 h', '1 d']
    """
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"
