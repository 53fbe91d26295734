"""PagerDuty Events API v2: a firing notification (new or update) is a ``trigger``, a resolved
one a ``resolve``; ``dedup_key`` is the incident key, so PagerDuty keeps one alert per
incident and a re-sent trigger is merged into it (at-least-once is safe).

An incident already over when first sent (``"late": true``: found by a catch-up or a backfill)
is a *change event*: recorded on the service's timeline, where responders see it beside the
incidents it may explain, but paging no one for something that has ended. A ``resolve`` for a
key PagerDuty never saw would be dropped without a trace."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import httpx

from alerts.blocks import grafana_link, summary
from alerts.changes import describe
from alerts.display import Names
from alerts.notifiers.base import Notifier
from alerts.notifiers.config import PagerDutyReceiverConfig, PagerDutySeverityConfig
from alerts.notifiers.http import post_json
from monitor.model import severity_name

__all__ = ["PagerDutyNotifier", "pagerduty_change_event", "pagerduty_event"]

MAX_SUMMARY = 1024  # PagerDuty's limit on payload.summary


def dedup_key(incident_key: str) -> str:
    """The incident key, hashed only when longer than PagerDuty's 255 characters."""
    if len(incident_key) <= 255:
        return incident_key
    return "cxmon-" + hashlib.sha256(incident_key.encode()).hexdigest()


def pagerduty_event(payload: Mapping[str, Any], routing_key: str, *, source: str = "cxmon",
                    grafana_url: str | None = None,
                    severities: PagerDutySeverityConfig | None = None) -> dict[str, Any]:
    """The Events API v2 body for one notification (an alert event). ``severities``: which
    cxmon severities are PagerDuty's critical, error and warning (default 75, 50, 25)."""
    key = dedup_key(str(payload.get("incident_key", "")))
    if payload.get("status") == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    severity = int(payload.get("severity") or 0)
    severities = severities or PagerDutySeverityConfig()
    anomalies = [*(payload.get("headline") or []), *(payload.get("anomalies") or [])]
    metrics = sorted({str(a.get("metric")) for a in anomalies if a.get("metric")})
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": key,
        "client": "cxmon",
        "payload": {
            "summary": _summary(payload, key),
            "source": source,
            "severity": severities.level(severity),
            "timestamp": payload.get("opened_at"),
            "component": payload.get("journey") or "all",
            "group": payload.get("journey") or "all",
            "class": ", ".join(metrics) or "anomaly",
            "custom_details": _details(payload),
        },
    }
    return _with_links(event, payload, grafana_url)


def pagerduty_change_event(payload: Mapping[str, Any], routing_key: str, *,
                           source: str = "cxmon", grafana_url: str | None = None,
                           severities: PagerDutySeverityConfig | None = None
                           ) -> dict[str, Any]:
    """The Change Events body for an incident already over when first sent (change events
    have no severity: ``severities`` is accepted for a uniform call)."""
    key = str(payload.get("incident_key", ""))
    said = _readable(payload) or str(payload.get("title") or key)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "payload": {
            "summary": _cut(f"{said} (over before it was reported)"),
            "source": source,
            "timestamp": payload.get("opened_at"),
            "custom_details": {"incident_key": key, "resolved_at": payload.get("resolved_at"),
                               **_details(payload)},
        },
    }
    return _with_links(event, payload, grafana_url)


def _summary(payload: Mapping[str, Any], key: str) -> str:
    """What a phone's lock screen shows of the page: what moved, in which journey, by how
    much, where and why (the Slack message's preview), and the severity; an update's starts
    with what changed since the last trigger, then reads as the incident is now: led by its
    worst anomaly told so far (``headline``, :func:`alerts.grouping.headline_of`), not by what
    is new (PagerDuty's alert shows the latest trigger's summary and severity; the severity is
    the incident's highest). Within PagerDuty's 1024 characters.

    >>> _summary({"journey": "checkout", "group": {"journey": "checkout"}, "severity": 55,
    ...     "anomalies": [{"metric": "checkout_dropoff_rate", "value": 0.587, "expected": 0.294,
    ...                    "unit": "percent", "labels": {"channel": "app"}, "change": 1.0}]},
    ...     "k").split(" · ")[1:]
    ['checkout_dropoff_rate +100% (58.7% vs 29.4% expected) in channel=app', 'sev 55 high']
    """
    current = {**payload, "anomalies": payload["headline"]} if payload.get("headline") \
        else payload
    said = _readable(current) or str(payload.get("title") or key)
    severity = int(payload.get("severity") or 0)
    said += f" · sev {severity} {severity_name(severity)}"
    changed = describe(payload.get("changes"), payload.get("group"),
                       Names.from_payload(payload))
    lead = "Reminder" if payload.get("repeat") else "Update"
    return _cut(f"{lead}: {changed} · {said}" if changed else said)


def _readable(payload: Mapping[str, Any]) -> str:
    """The preview line Slack's message has (:func:`alerts.blocks.summary`), or ``""``."""
    if not payload.get("anomalies"):
        return ""
    head, numbers, tail = summary(payload)
    return f"{head}{f' ({numbers})' if numbers else ''}{tail}"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SUMMARY else text[:MAX_SUMMARY - 1] + "…"


def _details(payload: Mapping[str, Any]) -> dict[str, Any]:
    anomalies = list(payload.get("anomalies") or [])
    return {
        "severity": int(payload.get("severity") or 0),
        "group": payload.get("group") or {},
        "anomalies": anomalies[:5],
        "anomalies_total": payload.get("anomalies_total", len(anomalies)),
        **({"root_cause": payload["root_cause"]} if payload.get("root_cause") else {}),
        **({"changes": payload["changes"]} if payload.get("changes") is not None else {}),
    }


def _with_links(event: dict[str, Any], payload: Mapping[str, Any],
                grafana_url: str | None) -> dict[str, Any]:
    links = []
    if grafana_url and (link := grafana_link(payload, grafana_url)):
        links.append({"href": link, "text": "Grafana"})
    if payload.get("runbook"):
        links.append({"href": str(payload["runbook"]), "text": "Runbook"})
    if links:
        event["links"] = links
    return event


class PagerDutyNotifier(Notifier):
    def __init__(self, name: str, config: PagerDutyReceiverConfig, *,
                 grafana_url: str | None = None, client: httpx.Client | None = None) -> None:
        self.name = name
        self.config = config
        self.grafana_url = grafana_url
        self.client = client or httpx.Client(timeout=config.timeout)

    def __repr__(self) -> str:
        return f"PagerDutyNotifier({self.name!r})"

    def send(self, payload: Mapping[str, Any]) -> None:
        key = self.config.routing_key.get_secret_value()
        url, build = self.config.events_url, pagerduty_event
        change = self.config.change_endpoint()
        if payload.get("late") and payload.get("status") == "resolved" and change:
            url, build = change, pagerduty_change_event
        event = build(payload, key, source=self.config.source, grafana_url=self.grafana_url,
                      severities=self.config.severity)
        body = json.dumps(event, default=str).encode()
        post_json(self.client, url, body, {}, f"pagerduty {self.name}",
                  timeout=self.config.timeout)
