"""Build the notification payload (the schema in :mod:`alerts.notifiers.base`) for one
incident change. Every notifier renders from this one dict, so they all say the same thing."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from alerts.display import Names
from alerts.numbers import anomaly_format, clamp_band, text_fields
from alerts.routing import headline_rank
from monitor.incidents import IncidentChange, contributors, root_cause_payload
from monitor.model import Anomaly, parse_series_key

MAX_ANOMALIES = 20


def anomaly_dict(a: Anomaly) -> dict[str, Any]:
    """JSON-able view of an anomaly (non-finite numbers become None)."""
    return {
        "id": a.id,
        "series": a.series,
        "metric": a.metric,
        "labels": dict(a.labels),
        "timestamp": a.timestamp.isoformat(),
        "value": _finite(a.value),
        "expected": _finite(a.expected),
        "lower": _finite(a.lower),
        "upper": _finite(a.upper),
        "score": _finite(a.score),
        "severity": a.severity,
        "direction": str(a.direction),
        "change": _finite(a.change),
        "detector": a.detector,
        "kind": a.kind,
        "last_seen": a.last_seen.isoformat() if a.last_seen is not None else None,
        "volume": _finite(a.volume) if a.volume is not None else None,
    }


def incident_payload(
    change: IncidentChange, *, runbooks: Mapping[str, str | None] | None = None,
    percent: Collection[str] = (), names: Names | None = None,
) -> dict[str, Any]:
    """Payload for an opened, updated or resolved incident. Anomalies (and mix shifts) of the
    metrics in ``percent`` (ratios: a drop-off rate) carry ``"unit": "percent"``, so messages
    say 58.7%, not 0.587 (unless the metric has a ``unit`` of its own). Each anomaly carries
    its metric's number settings (``format``, from ``names``) and the numbers as printed
    (``text``). With display ``names`` (:mod:`alerts.display`), the title reads them, each
    anomaly adds ``title`` / ``display``, and ``display`` carries the names the notifiers
    need; identifiers (``metric``, ``labels``, ``group``) are unchanged."""
    names = Names() if names is None else names  # formats, even without any name
    # a ratio with a unit of its own (an average order value in EUR) reads as a plain number
    percent = {m for m in percent if not names.formats.get(m, {}).get("unit")}
    inc = change.incident
    ranked = sorted(change.anomalies, key=headline_rank)  # the one routed by first
    shown = ranked[:MAX_ANOMALIES]
    metrics = sorted({a.metric for a in change.anomalies})
    where, sep = _scope(inc.group, metrics, names)
    if change.status == "resolved":
        title = f"{where}{sep}resolved"
    else:
        silent = all(a.kind == "no_data" for a in change.anomalies) and change.anomalies
        title = (f"{where}{sep}{', '.join(names.metric(m) for m in metrics)} "
                 f"{'has no data' if silent else 'anomalous'}")
    runbook = None
    # a resolution carries no anomalies: its runbook is its measures' (the thread's last
    # message lost the Runbook button the first one had)
    for m in metrics or inc.measure_order():
        runbook = runbook or (runbooks or {}).get(m)
    causes = root_cause_payload(inc)
    payload = {
        "status": "resolved" if change.status == "resolved" else "firing",
        "update": change.status == "updated",
        "incident_key": inc.key,
        "group": dict(inc.group),
        "journey": inc.group.get("journey"),
        "severity": inc.severity,
        "title": title,
        "opened_at": inc.opened_at.isoformat(),
        "resolved_at": change.at.isoformat() if change.status == "resolved" else None,
        "runbook": runbook,
        "anomalies": [{**_numbers(a, a.metric in percent, names),
                       **names.anomaly_extras(a.metric, a.labels)} for a in shown],
        "anomalies_total": len(change.anomalies),
        # root cause (monitor/incidents.py): measures in the order they moved, the best root
        # cause of each ([{metric, elements, share, score, ...}]) and the top dimension values
        "measures": [{"metric": m, **inc.measures[m]} for m in inc.measure_order()],
        "root_cause": [_mix_unit(rc, rc.get("metric") in percent,
                                 names.formats.get(str(rc.get("metric")))) for rc in causes],
        "contributors": contributors(inc),
    }
    if (names or names.timezone != "UTC") and (shown_names := _display(names, change, causes)):
        payload["display"] = shown_names
    return payload


def _scope(group: Mapping[str, str], metrics: list[str], names: Names) -> tuple[str, str]:
    """The title's "where" and separator: ``journey=checkout: `` as ever, or, once a name
    applies, ``Checkout journey · `` (``journey: Checkout: `` would read badly)."""
    pairs = sorted(group.items())
    if not (any(names.named(k, v) for k, v in pairs) or any(m in names.metrics for m in metrics)):
        return ", ".join(f"{k}={v}" for k, v in pairs) or "all series", ": "
    if set(group) == {"journey"}:  # titled metrics, the journey's name or not
        return f"{names.value('journey', group['journey'])} journey", " · "
    return names.group(dict(pairs)) or "all series", " · "


def _display(names: Names, change: IncidentChange, causes: list[dict[str, Any]]
             ) -> dict[str, Any]:
    """The names a payload needs: of every metric and label it (or a later ``changes`` of
    its incident) can mention."""
    inc = change.incident
    metrics = {a.metric for a in change.anomalies} | set(inc.measures) | {
        str(rc.get("metric")) for rc in causes}
    labels = set(inc.group)
    for a in change.anomalies:
        labels.update(a.labels)
    for key in inc.series:
        try:
            labels.update(parse_series_key(key)[1])
        except ValueError:
            continue
    for rc in causes:
        for el in rc.get("elements") or []:
            labels.update(el)
        labels.update(rc.get("split") or {})
        if isinstance(rc.get("mix"), dict) and rc["mix"].get("dimension"):
            labels.add(str(rc["mix"]["dimension"]))
    return names.for_payload(metrics, labels)


def _numbers(a: Anomaly, percent: bool, names: Names) -> dict[str, Any]:
    """The anomaly with what messages need to print its numbers (:mod:`alerts.numbers`):
    ``unit`` (percent), ``format`` (the metric's unit, scale, decimals, volume noun) when
    any applies, and ``text``, the numbers as printed, for webhook and PagerDuty readers."""
    return readable(anomaly_dict(a), percent=percent, names=names)


def readable(item: Mapping[str, Any], *, percent: bool, names: Names) -> dict[str, Any]:
    """An anomaly as a dict (``metric``, ``kind``, ``value``, ``expected``, ``lower``,
    ``upper``, ``volume``: a payload's, or a stored row's) with its ``unit``, ``format`` and
    ``text``: what :mod:`alerts.numbers` prints, so ``cxmon anomalies`` and anything else that
    reads an anomaly back from the store says it as the alert did. ``percent``: the metric
    is a ratio (ignored when its metric has a unit of its own). ``expected``, ``lower`` and
    ``upper`` are clamped to the metric's possible values (``names.ranges``), numbers and
    text alike, so no output shows a CSAT band above its scale or a count's below zero.

    >>> names = Names(formats={"csat": {"scale_max": 5.0, "decimals": 2,
    ...                                 "volume_unit": "responses"}})
    >>> readable({"metric": "csat", "value": 3.1, "expected": 4.3, "volume": 14.0},
    ...          percent=False, names=names)["text"]["value"]
    '3.10 / 5'
    """
    fmt = names.formats.get(str(item.get("metric")))
    out = _with_unit(dict(item), percent and not (fmt or {}).get("unit"))
    if out.get("kind") != "no_data":  # a silence's numbers are not KPI values
        out = clamp_band(out, names.ranges.get(str(item.get("metric"))))
    value = out.get("value")
    if isinstance(value, float) and not math.isfinite(value):
        value = None
    if fmt := anomaly_format(fmt, value):
        out["format"] = fmt
    if out.get("kind") != "no_data":
        out["text"] = text_fields(out)
    return out


def _with_unit(item: dict[str, Any], percent: bool) -> dict[str, Any]:
    return {**item, "unit": "percent"} if percent else item


def _mix_unit(rc: dict[str, Any], percent: bool,
              fmt: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A root-cause entry whose mix shift's rates read as the metric's values do: percentages
    when the metric's are, else with its unit, scale and decimals (``format``), so the root
    cause line says ``3.90 / 5`` where the headline says ``3.10 / 5``, not ``3.9``."""
    if not isinstance(rc.get("mix"), dict):
        return rc
    mix = _with_unit(rc["mix"], percent)
    if shown := {k: v for k, v in (fmt or {}).items()
                 if k in ("unit", "scale_max", "decimals")}:
        mix["format"] = shown
    return {**rc, "mix": mix}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def message_kind(payload: Any) -> str:
    """Which message of its incident a notification is: four dead-lettered rows of one
    incident looked alike, though retrying an old reminder is worth less than a first message.

    >>> [message_kind(p) for p in ({}, {"update": True}, {"update": True, "repeat": True},
    ...                            {"status": "resolved"})]
    ['first message', 'update', 'reminder', 'resolution']
    """
    payload = payload if isinstance(payload, dict) else {}
    if payload.get("status") == "resolved":
        return "resolution"
    if payload.get("repeat"):
        return "reminder"
    return "update" if payload.get("update") else "first message"
