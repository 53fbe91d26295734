"""Acknowledgements: someone is on it, so stop the ``repeat_interval`` reminders.

An acknowledged incident's alert groups send no reminders (repeat notifications of an
unchanged group) until it changes materially (:func:`alerts.changes.material_change`: its
severity rises a level, or it spreads to series it did not have when acknowledged), which
lifts the acknowledgement, or until it resolves (the resolution is still sent, and ends the
acknowledgement). Updates are sent as before: they say something new.

Stored in the ``alert_acks`` table (``severity`` and ``series``: the incident as it was
acknowledged), so a restart keeps it. Made by the Slack "Acknowledge" button
(:mod:`alerts.feedback_server`) and by ``cxmon alerts ack``; ``cxmon alerts unack`` removes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.store import Store, alert_acks_t, incidents_t

__all__ = ["Ack", "acknowledge", "get_ack", "lift_ack", "list_acks", "unacknowledge"]

log = logging.getLogger(__name__)

A = alert_acks_t


@dataclass(frozen=True, slots=True)
class Ack:
    incident_key: str
    acked_at: datetime
    acked_by: str
    source: str
    severity: int
    series: tuple[str, ...]

    def as_state(self) -> dict[str, Any]:
        """What :func:`alerts.changes.material_change` compares the incident with."""
        return {"severity": self.severity, "series": list(self.series)}


def _ack(row: Any) -> Ack:
    return Ack(row.incident_key, row.acked_at, row.acked_by, row.source, int(row.severity),
               tuple(row.series or ()))


def acknowledge(store: Store, incident_key: str, *, by: str, source: str,
                now: datetime) -> Ack:
    """Acknowledge the open incident ``incident_key`` (again: the new one replaces the old,
    taking the incident as it is now). KeyError if no open incident has that key."""
    with store.transaction() as tx:
        conn = tx.conn
        inc = conn.execute(sa.select(incidents_t.c.severity, incidents_t.c.summary).where(
            incidents_t.c.key == incident_key, incidents_t.c.status == "open")).first()
        if inc is None:
            raise KeyError(f"no open incident {incident_key!r}")
        series = sorted((inc.summary or {}).get("series") or [])
        conn.execute(sa.delete(A).where(A.c.incident_key == incident_key))
        conn.execute(sa.insert(A).values(incident_key=incident_key, acked_at=now,
                                         acked_by=by[:255], source=source,
                                         severity=int(inc.severity), series=series))
    log.info("incident %s acknowledged by %s (%s): no reminders until it changes", incident_key,
             by, source)
    return Ack(incident_key, now, by[:255], source, int(inc.severity), tuple(series))


def unacknowledge(store: Store, incident_key: str) -> bool:
    """Remove an acknowledgement (reminders resume); False if there was none."""
    with store.transaction() as tx:
        return lift_ack(tx.conn, incident_key, "removed")


def list_acks(store: Store) -> list[Ack]:
    """Every acknowledgement in force, oldest first."""
    with store.engine.connect() as conn:
        return [_ack(r) for r in conn.execute(sa.select(A).order_by(A.c.acked_at,
                                                                     A.c.incident_key))]


def get_ack(conn: Connection, incident_key: str) -> Ack | None:
    """The incident's acknowledgement, read in the caller's transaction."""
    row = conn.execute(sa.select(A).where(A.c.incident_key == incident_key)).first()
    return _ack(row) if row is not None else None


def lift_ack(conn: Connection, incident_key: str, why: str) -> bool:
    """End the incident's acknowledgement (material change, resolution, removal)."""
    n = conn.execute(sa.delete(A).where(A.c.incident_key == incident_key)).rowcount
    if n:
        log.info("incident %s: acknowledgement lifted (%s)", incident_key, why)
    return bool(n)
