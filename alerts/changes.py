"""What changed in an alert group since the last message its receiver got, and whether an
acknowledged group changed enough to remind anyone again. Pure: dicts in, dicts out.

A *state* is what one message told (or what an acknowledgement saw)::

    {"severity": 48, "points": 12, "series": [series keys], "measures": [metrics],
     "root_cause": ["metric: channel=app, region=uk", ...],
     "root_cause_items": [{"metric": "metric", "labels": {"channel": "app", "region": "uk"}}]}

``root_cause`` (one string per culprit) is what is compared; ``root_cause_items`` carries the
same culprits as data, so an update names them as people read them (display names) whatever
their values hold (``, `` or ``=``).

:mod:`alerts.grouping` keeps the last state told to each receiver with its group (column
``told`` of ``alert_groups``), so an update after a restart still says what is new. An update's
payload carries ``changes`` (:func:`diff`), rendered by every notifier (:func:`describe`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from alerts.display import Names
from monitor.model import SEVERITY_LEVELS, parse_series_key, severity_name

__all__ = ["describe", "diff", "material_change", "state"]

#: New series named in the text (the ``changes`` object lists up to ``MAX_SERIES``).
SHOWN_SERIES = 3
MAX_SERIES = 20
_HIDDEN_LABELS = ("team",)


def state(payload: Mapping[str, Any], series: Iterable[str], points: int) -> dict[str, Any]:
    """The state a message with ``payload`` tells: the incident's ``series`` and anomalous
    ``points`` so far come from the store (a payload lists only its own anomalies)."""
    causes = _cause_items(payload.get("root_cause"))
    return {
        "severity": int(payload.get("severity") or 0),
        "points": int(points),
        "series": sorted(set(series)),
        "measures": sorted({str(m.get("metric")) for m in payload.get("measures") or []
                            if isinstance(m, Mapping) and m.get("metric")}),
        "root_cause": [_cause_key(c) for c in causes],
        "root_cause_items": causes,
    }


def _cause_items(raw: Any) -> list[dict[str, Any]]:
    """One ``{"metric", "labels"}`` per root-cause element (labels sorted), each culprit once,
    in the order of their :func:`_cause_key`."""
    out: dict[str, dict[str, Any]] = {}
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping):
            continue
        for el in item.get("elements") or []:
            if isinstance(el, Mapping) and el:
                cause = {"metric": str(item.get("metric") or ""),
                         "labels": {str(k): v for k, v in sorted(el.items())}}
                out.setdefault(_cause_key(cause), cause)
    return [out[k] for k in sorted(out)]


def _cause_key(cause: Mapping[str, Any]) -> str:
    """``metric: dim=value, ...``: a culprit as one string, so a new culprit is a new string.

    >>> _cause_key({"metric": "m", "labels": {"channel": "app", "region": "uk"}})
    'm: channel=app, region=uk'
    """
    labels = cause.get("labels") if isinstance(cause.get("labels"), Mapping) else {}
    where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"{cause.get('metric') or ''}: {where}"


def diff(told: Mapping[str, Any], now: Mapping[str, Any], since: str | None) -> dict[str, Any]:
    """The ``changes`` object of an update: only what differs from ``told``; ``since`` is
    when the previous message went out. A reminder of an unchanged group gets ``{"since"}``.

    >>> old = {"severity": 35, "points": 4, "series": ["m{region=\\"uk\\"}"], "measures": ["m"],
    ...        "root_cause": []}
    >>> new = {"severity": 52, "points": 7, "series": ["m{region=\\"uk\\"}", "m{region=\\"us\\"}"],
    ...        "measures": ["m"], "root_cause": ["m: region=us"]}
    >>> c = diff(old, new, "2026-01-05T10:00:00+00:00")
    >>> c["severity"], c["new_points"], c["new_series"], c["new_root_causes"]
    ({'from': 35, 'to': 52, 'level': 'high'}, 3, ['m{region="us"}'], ['m: region=us'])
    """
    out: dict[str, Any] = {"since": since}
    before, after = int(told.get("severity") or 0), int(now.get("severity") or 0)
    if after != before:
        out["severity"] = {"from": before, "to": after, "level": severity_name(after)}
    points = int(now.get("points") or 0) - int(told.get("points") or 0)
    if points > 0:
        out["new_points"] = points
    new = sorted(set(now.get("series") or []) - set(told.get("series") or []))
    if new:
        out["new_series"] = new[:MAX_SERIES]
        out["new_series_total"] = len(new)
    for key, name in (("measures", "new_measures"), ("root_cause", "new_root_causes")):
        added = sorted(set(now.get(key) or []) - set(told.get(key) or []))
        if added:
            out[name] = added
    if out.get("new_root_causes"):  # the same culprits as data, in the same order
        items = {_cause_key(c): c for c in now.get("root_cause_items") or []
                 if isinstance(c, Mapping)}
        if all(k in items for k in out["new_root_causes"]):
            out["new_root_cause_items"] = [items[k] for k in out["new_root_causes"]]
    return out


def describe(changes: Mapping[str, Any] | None, group: Mapping[str, Any] | None = None,
             names: Names | None = None) -> str:
    """One line saying what changed (``""`` for a first message), e.g. ``severity 35 → 52
    (high); 3 new anomalous points; also anomalous now: region=us`` (with display ``names``: metric
    titles and ``Region: US``).

    >>> describe({"since": "t", "severity": {"from": 35, "to": 52, "level": "high"},
    ...           "new_points": 3, "new_series": ['m{journey="checkout",region="us"}'],
    ...           "new_series_total": 1}, {"journey": "checkout"})
    'severity 35 → 52 (high); 3 new anomalous points; also anomalous now: region=us'
    >>> describe({"since": "t"})
    'no change since the last message'
    >>> describe({"since": "t", "ack_lifted": {"by": "ana", "reason": "severity"}})
    'acknowledged by ana, but its severity rose a level: reminders are back on'
    """
    if changes is None:
        return ""
    names = names if names is not None else Names()
    parts = []
    sev = changes.get("severity")
    if isinstance(sev, Mapping):
        parts.append(f"severity {sev.get('from')} → {sev.get('to')} ({sev.get('level')})")
    points = int(changes.get("new_points") or 0)
    if points:
        parts.append(f"{points} new anomalous point{'s' if points != 1 else ''}")
    measures = list(changes.get("new_measures") or [])
    if measures:
        parts.append(f"new measure{'s' if len(measures) > 1 else ''} "
                     f"{', '.join(names.metric(m) for m in measures)}")
    series = list(changes.get("new_series") or [])
    if series:
        parts.append(_also(series, int(changes.get("new_series_total") or len(series)),
                           group or {}, names))
    causes = _causes_text(changes, names)
    if causes:
        parts.append(f"new root cause {'; '.join(causes[:SHOWN_SERIES])}"
                     + (f" (+{len(causes) - SHOWN_SERIES} more)" if len(causes) > SHOWN_SERIES
                        else ""))
    lifted = changes.get("ack_lifted")
    if isinstance(lifted, Mapping):
        what = "its severity rose a level" if lifted.get("reason") == "severity" else \
            "it spread to new series"
        parts.append(f"acknowledged by {lifted.get('by')}, but {what}: reminders are back on")
    return "; ".join(parts) or "no change since the last message"


def _causes_text(changes: Mapping[str, Any], names: Names) -> list[str]:
    """The new root causes as people read them: from ``new_root_cause_items`` (the culprits'
    labels as data, so a value with ``, `` or ``=`` is named all the same); a ``changes`` from
    before it had them says its strings as they are.

    >>> names = Names({"m": "Drop-off"}, {"channel": "Channel"}, {"plan": {"a=1, b": "Plan A"}})
    >>> _causes_text({"new_root_causes": ["m: channel=app, plan=a=1, b"],
    ...               "new_root_cause_items": [{"metric": "m", "labels": {
    ...                   "channel": "app", "plan": "a=1, b"}}]}, names)
    ['Drop-off: Channel: app, plan: Plan A']
    >>> _causes_text({"new_root_causes": ["m: channel=app"]}, names)
    ['m: channel=app']
    """
    raw = [str(c) for c in changes.get("new_root_causes") or []]
    items = changes.get("new_root_cause_items")
    if not names or not isinstance(items, list) or len(items) != len(raw) \
            or not all(isinstance(c, Mapping) for c in items):
        return raw
    out = []
    for cause in items:
        labels = cause.get("labels") if isinstance(cause.get("labels"), Mapping) else {}
        metric = cause.get("metric")
        out.append(f"{names.metric(metric) if metric else ''}: "
                   f"{names.where(sorted(labels.items()))}")
    return out


def _also(series: list[str], total: int, group: Mapping[str, Any],
          names: Names | None = None) -> str:
    """``also anomalous now: region=us / channel=app, region=de (+2 more)``: the labels the
    group does not say, each with its metric when the new series are of several metrics;
    series are set apart by `` / `` (a comma already separates one series' labels). Said
    "anomalous" because "now also channel=app" read as a root cause, not as more series.

    >>> _also(['m{channel="app",region="de"}', 'm{region="uk"}'], 2, {})
    'also anomalous now: channel=app, region=de / region=uk'
    """
    parsed = []
    for key in series:
        try:
            parsed.append(parse_series_key(key))
        except ValueError:
            parsed.append((key, {}))
    names = names if names is not None else Names()
    several = len({metric for metric, _ in parsed}) > 1
    said = []
    for metric, labels in parsed:
        where = names.where((k, v) for k, v in sorted(labels.items())
                            if k not in group and k not in _HIDDEN_LABELS) or "total"
        said.append(f"{names.metric(metric)} {where}" if several else where)
    unique = list(dict.fromkeys(said))
    shown = unique[:SHOWN_SERIES]
    more = max(total - len(series), 0) + len(unique) - len(shown)
    return "also anomalous now: " + " / ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _band(severity: int) -> int:
    """The severity level's rank: low 0, medium 1, high 2, critical 3."""
    floors = sorted(low for low, _ in SEVERITY_LEVELS)
    return sum(1 for low in floors[1:] if severity >= low)


def material_change(acked: Mapping[str, Any], severity: int, series: Iterable[str]
                    ) -> str | None:
    """Why an acknowledged group must remind again, or None: its severity rose a level
    (medium → high) or it spread to series it did not have when acknowledged.

    >>> material_change({"severity": 40, "series": ["a"]}, 48, ["a"]) is None
    True
    >>> material_change({"severity": 40, "series": ["a"]}, 52, ["a"])
    'severity rose from medium to high'
    >>> material_change({"severity": 40, "series": ["a"]}, 40, ["a", "b"])
    'new series b'
    """
    before = int(acked.get("severity") or 0)
    if _band(severity) > _band(before):
        return f"severity rose from {severity_name(before)} to {severity_name(severity)}"
    new = sorted(set(series) - set(acked.get("series") or []))
    if new:
        return f"new series {', '.join(new[:SHOWN_SERIES])}" + (
            f" (+{len(new) - SHOWN_SERIES} more)" if len(new) > SHOWN_SERIES else "")
    return None
