"""A false alarm closes the incident: when every anomaly of an open incident has been marked
``not_anomaly`` or ``expected`` (the Slack buttons, ``cxmon feedback``), the incident is
resolved in the store now, with who dismissed it (``summary["dismissed"]``: ``{"by", "at",
"label", "severity"}``), and every receiver that was told of it gets its resolution, marked
``"dismissed"``: PagerDuty a ``resolve`` (its escalation stops), Slack the thread's
resolution, a webhook ``status: resolved``. All in one transaction: a second click finds it
closed and sends nothing.

Why: the verdict makes those series need a rarer deviation before they alert again, so the
incident went quiet, but it stayed open until ``resolve_after`` passed without anomalies:
``cxmon status`` listed a false alarm as a live incident, and PagerDuty kept escalating a page
its responder had called a false alarm. The monitor (:meth:`monitor.pipeline.Pipeline`, which
may be another process) learns of the dismissal at its next commit (:func:`dismissals`, in
that commit's transaction) and keeps the closed incident only to take its group's later
anomalies quietly until ``resolve_after`` passes (a spread to the roll-up a minute later,
driven by the very values called a false alarm, paged again); only a higher severity level
than when dismissed opens a new incident, told as new (a new PagerDuty alert). Its alert
groups keep the dismissal in ``told`` too (no reminders, no updates, no second resolution),
and they are what a restarted monitor finds it by.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from alerts.grouping import lock_groups
from alerts.notifiers.console import dismissal
from monitor.model import Notification
from monitor.store import Store, StoreTx, alert_groups_t, anomalies_t, feedback_t, incidents_t

__all__ = ["DISMISSING", "dismiss_false_alarms", "dismissals", "still_open"]

log = logging.getLogger(__name__)

#: verdicts that call an anomaly no problem (``confirmed`` calls it one)
DISMISSING = ("not_anomaly", "expected")
_VERDICTS = (*DISMISSING, "confirmed")

G = alert_groups_t


def dismiss_false_alarms(store: Store, anomaly_ids: list[str], *, by: str,
                         now: datetime) -> list[str]:
    """Dismiss the open incidents of ``anomaly_ids`` whose every anomaly's latest verdict is
    ``not_anomaly`` or ``expected``: each is resolved at ``now`` with the dismissal in its
    summary, its resolution, marked ``dismissed``, goes into the outbox for every receiver
    told of it, and its alert groups are closed. Returns the keys of the incidents dismissed
    now (none when a verdict is missing or ``confirmed``, or when it was dismissed before: a
    second click sends nothing again)."""
    dismissed: list[str] = []
    with store.transaction() as tx:
        # the incidents' rows first, then their groups (a tick's commit locks in that order
        # too): what a concurrent commit or flush changes in between is not overwritten
        incidents = _open_incidents(tx, anomaly_ids, lock=True)
        lock_groups(tx, (key for key, _id in incidents))
        for key, incident_id in incidents:
            label = _verdict(tx, incident_id)
            if label is None:
                continue
            said = {"by": by, "at": now.isoformat(), "label": label}
            severity = _close_incident(tx, incident_id, said, now)
            _close_groups(tx, key, {**said, "severity": severity}, now)
            dismissed.append(key)
    for key in dismissed:
        log.info("incident %s dismissed by %s: closed (every anomaly marked not a problem); "
                 "its receivers get its resolution", key, by)
    return dismissed


def still_open(store: Store, anomaly_ids: list[str]) -> list[tuple[str, int, int]]:
    """``(key, unmarked, anomalies)`` of each open incident of ``anomaly_ids`` that a verdict
    did not dismiss: ``cxmon feedback`` marks one anomaly, the incident needs all of them, and
    without this the page kept escalating with nothing said why."""
    out = []
    with store.transaction() as tx:
        for key, incident_id in _open_incidents(tx, anomaly_ids):
            if _verdict(tx, incident_id) is not None:
                continue
            latest = _latest_verdicts(tx, incident_id)
            ids = _anomaly_ids(tx, incident_id)
            out.append((key, sum(latest.get(i) not in DISMISSING for i in ids), len(ids)))
    return out


def dismissals(tx: StoreTx, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The dismissal of each of the incidents ``keys`` that is closed as a false alarm in the
    store, by key. The monitor asks at the start of a commit's transaction about the incidents
    it holds open; on PostgreSQL their rows stay locked until that commit ends, so a dismissal
    either commits before (and is seen here) or waits for it (and sees its anomalies)."""
    ordered = sorted(set(keys))
    out: dict[str, dict[str, Any]] = {}
    for chunk in (ordered[i:i + 500] for i in range(0, len(ordered), 500)):
        q = (sa.select(incidents_t.c.key, incidents_t.c.status, incidents_t.c.summary)
             .where(incidents_t.c.key.in_(chunk)).order_by(incidents_t.c.key))
        if tx.conn.dialect.name == "postgresql":
            q = q.with_for_update()
        for key, status, summary in tx.conn.execute(q).all():
            found = (summary or {}).get("dismissed") if isinstance(summary, dict) else None
            if status == "resolved" and isinstance(found, dict):
                out[str(key)] = dict(found)
    return out


def _open_incidents(tx: StoreTx, anomaly_ids: list[str], *,
                    lock: bool = False) -> list[tuple[str, int]]:
    found: set[int] = set()
    for i in range(0, len(anomaly_ids), 500):
        q = (sa.select(anomalies_t.c.incident_id)
             .where(anomalies_t.c.id.in_(anomaly_ids[i:i + 500]),
                    anomalies_t.c.incident_id.is_not(None)))
        found.update(int(r[0]) for r in tx.conn.execute(q))
    if not found:
        return []
    q = (sa.select(incidents_t.c.key, incidents_t.c.id)
         .where(incidents_t.c.id.in_(sorted(found)), incidents_t.c.status == "open")
         .order_by(incidents_t.c.key))
    if lock and tx.conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return [(str(k), int(v)) for k, v in tx.conn.execute(q).all()]


def _verdict(tx: StoreTx, incident_id: int) -> str | None:
    """``not_anomaly`` or ``expected`` when every anomaly of the incident's latest verdict is
    one of them (the one most given), else None."""
    ids = _anomaly_ids(tx, incident_id)
    if not ids:
        return None
    latest = _latest_verdicts(tx, incident_id)
    labels = [latest.get(i) for i in ids]
    if not all(label in DISMISSING for label in labels):
        return None
    return max(DISMISSING, key=labels.count)


def _anomaly_ids(tx: StoreTx, incident_id: int) -> list[str]:
    return [str(r[0]) for r in tx.conn.execute(
        sa.select(anomalies_t.c.id).where(anomalies_t.c.incident_id == incident_id))]


def _latest_verdicts(tx: StoreTx, incident_id: int) -> dict[str, str]:
    """Each marked anomaly of the incident: its latest verdict."""
    latest: dict[str, str] = {}
    q = (sa.select(feedback_t.c.anomaly_id, feedback_t.c.label)
         .join(anomalies_t, feedback_t.c.anomaly_id == anomalies_t.c.id)
         .where(anomalies_t.c.incident_id == incident_id, feedback_t.c.label.in_(_VERDICTS))
         .order_by(feedback_t.c.id))
    for anomaly_id, label in tx.conn.execute(q):
        latest[str(anomaly_id)] = str(label)
    return latest


def _close_incident(tx: StoreTx, incident_id: int, dismissed: dict[str, Any],
                    now: datetime) -> int:
    """Resolve the incident at ``now``, its summary saying who dismissed it and at which
    severity (a higher level later is a new incident); returns that severity."""
    row = tx.conn.execute(sa.select(incidents_t.c.severity, incidents_t.c.summary)
                          .where(incidents_t.c.id == incident_id)).one()
    severity = int(row.severity or 0)
    summary = dict(row.summary) if isinstance(row.summary, dict) else {}
    tx.conn.execute(sa.update(incidents_t).where(incidents_t.c.id == incident_id).values(
        status="resolved", resolved_at=now, updated_at=now,
        summary={**summary, "dismissed": {**dismissed, "severity": severity}}))
    return severity


def _close_groups(tx: StoreTx, key: str, dismissed: dict[str, Any], now: datetime) -> None:
    """The resolution to each receiver told (the last message it got, resolved); the
    incident's groups keep the dismissal (:mod:`alerts.grouping`: no reminders, no updates
    unless its severity rises a level, and no second resolution)."""
    rows = tx.conn.execute(sa.select(G).where(G.c.incident_key == key)).all()
    sent = []
    said = {k: v for k, v in dismissed.items() if k != "severity"}  # what receivers read
    for row in rows:
        told = dict(row.told) if isinstance(row.told, dict) else {}
        if "dismissed" in told:
            continue  # dismissed before: its resolution went out then
        tx.conn.execute(sa.update(G).where(G.c.incident_key == key,
                                           G.c.receiver == row.receiver).values(
            pending=None, pending_kind=None, next_flush_at=None,
            told={**told, "dismissed": dismissed}))
        if row.last_sent_at is None or not isinstance(row.last_payload, dict):
            continue  # nobody was told: nothing to take back
        payload = {k: v for k, v in row.last_payload.items()
                   if k not in ("repeat", "changes", "late", "headline")}
        group = payload.get("group") or {}
        where = ", ".join(f"{k}={v}" for k, v in sorted(group.items())) or "all series"
        payload.update(status="resolved", update=True, resolved_at=now.isoformat(),
                       anomalies=[], anomalies_total=0, dismissed=said,
                       title=f"{where}: {dismissal({'dismissed': said})}")
        sent.append(Notification(f"{key}|dismissed|{now.isoformat()}|{row.receiver}",
                                 row.receiver, key, payload))
    tx.enqueue_by_receiver(sent, now)
