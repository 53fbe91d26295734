"""A false alarm closes the page: when every anomaly of an open incident has been marked
``not_anomaly`` or ``expected`` (the Slack buttons, ``cxmon feedback``), every receiver that
was told of it gets its resolution now, marked ``"dismissed"``: PagerDuty a ``resolve`` (its
escalation stops), Slack the thread's resolution, a webhook ``status: resolved``.

Why not wait for cxmon to resolve it: the verdict makes those series need a rarer deviation
before they alert again, so the incident goes quiet, but it stays open until ``resolve_after``
passes without anomalies; meanwhile PagerDuty kept escalating a page its responder had called a
false alarm, and reminders kept re-triggering it. The incident stays open in cxmon (its later
points are still scored and stored), but its alert groups keep the dismissal: no reminders, no
updates (a spread to the roll-up a minute later, driven by the very values called a false
alarm, paged again), and no second resolution; only a rise of its severity to a higher level
than when dismissed tells it again, as a new first message (a new PagerDuty alert).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from alerts.grouping import lock_groups
from alerts.notifiers.console import dismissal
from monitor.model import Notification
from monitor.store import Store, StoreTx, alert_groups_t, anomalies_t, feedback_t, incidents_t

__all__ = ["DISMISSING", "dismiss_false_alarms", "still_open"]

log = logging.getLogger(__name__)

#: verdicts that call an anomaly no problem (``confirmed`` calls it one)
DISMISSING = ("not_anomaly", "expected")
_VERDICTS = (*DISMISSING, "confirmed")

G = alert_groups_t


def dismiss_false_alarms(store: Store, anomaly_ids: list[str], *, by: str,
                         now: datetime) -> list[str]:
    """Dismiss the open incidents of ``anomaly_ids`` whose every anomaly's latest verdict is
    ``not_anomaly`` or ``expected``: their resolution, marked ``dismissed``, goes into the
    outbox for every receiver told of them, and their alert groups are closed. Returns the
    keys of the incidents dismissed now (none when a verdict is missing or ``confirmed``, when
    no receiver has a group of it, or when it was dismissed before: a second click sends
    nothing again)."""
    dismissed: list[str] = []
    with store.transaction() as tx:
        incidents = _open_incidents(tx, anomaly_ids)
        # what a concurrent tick commit or flush changes in between must not be overwritten
        lock_groups(tx, (key for key, _id in incidents))
        for key, incident_id in incidents:
            label = _verdict(tx, incident_id)
            if label is None:
                continue
            if _close_groups(tx, key, {"by": by, "at": now.isoformat(), "label": label}, now):
                dismissed.append(key)
    for key in dismissed:
        log.info("incident %s dismissed by %s: every anomaly marked not a problem; its "
                 "receivers get its resolution", key, by)
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


def _open_incidents(tx: StoreTx, anomaly_ids: list[str]) -> list[tuple[str, int]]:
    out: dict[str, int] = {}
    for i in range(0, len(anomaly_ids), 500):
        q = (sa.select(incidents_t.c.key, incidents_t.c.id)
             .join(anomalies_t, anomalies_t.c.incident_id == incidents_t.c.id)
             .where(anomalies_t.c.id.in_(anomaly_ids[i:i + 500]),
                    incidents_t.c.status == "open"))
        out.update({str(k): int(v) for k, v in tx.conn.execute(q)})
    return sorted(out.items())


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


def _close_groups(tx: StoreTx, key: str, dismissed: dict[str, Any], now: datetime) -> int:
    """The resolution to each receiver told (the last message it got, resolved); the
    incident's groups keep the dismissal (:mod:`alerts.grouping`: no reminders, no updates
    unless its severity rises a level, and no second resolution)."""
    severity = tx.conn.execute(sa.select(incidents_t.c.severity)
                               .where(incidents_t.c.key == key)).scalar()
    rows = tx.conn.execute(sa.select(G).where(G.c.incident_key == key)).all()
    sent = []
    closed = 0
    for row in rows:
        told = dict(row.told) if isinstance(row.told, dict) else {}
        if "dismissed" in told:
            continue  # dismissed before: its resolution went out then
        closed += 1
        tx.conn.execute(sa.update(G).where(G.c.incident_key == key,
                                           G.c.receiver == row.receiver).values(
            pending=None, pending_kind=None, next_flush_at=None,
            told={**told, "dismissed": {**dismissed, "severity": int(severity or 0)}}))
        if row.last_sent_at is None or not isinstance(row.last_payload, dict):
            continue  # nobody was told: nothing to take back
        payload = {k: v for k, v in row.last_payload.items()
                   if k not in ("repeat", "changes", "late")}
        group = payload.get("group") or {}
        where = ", ".join(f"{k}={v}" for k, v in sorted(group.items())) or "all series"
        payload.update(status="resolved", update=True, resolved_at=now.isoformat(),
                       anomalies=[], anomalies_total=0, dismissed=dismissed,
                       title=f"{where}: {dismissal({'dismissed': dismissed})}")
        sent.append(Notification(f"{key}|dismissed|{now.isoformat()}|{row.receiver}",
                                 row.receiver, key, payload))
    tx.enqueue_by_receiver(sent, now)
    return closed
