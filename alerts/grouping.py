"""Alertmanager's group timing for cxmon's incident notifications, durable in the store.

An *alert group* here is one incident as told to one receiver (the route that reached the
receiver first gives the timings). Like Alertmanager's aggregation groups:

- ``group_wait``: a new group's first notification waits this long, so whatever else the
  incident gathers meanwhile (more series, measures, root causes) goes out in one message;
- ``group_interval``: after a flush, the group flushes again only at ``last flush + k ×
  group_interval``; changes in between are merged into one notification;
- ``repeat_interval``: an unchanged, still-firing group is re-notified (a reminder in the
  thread) at the first flush at least this long after the last notification;
- a resolution is a change too (sent at the next flush, to receivers that were told). Unlike
  Alertmanager, an incident that resolves before its first flush (a catch-up tick after
  downtime opens and resolves it at once; a blip shorter than ``group_wait``) is still told,
  once, at that flush: its first message marked ``"late": true`` and resolved, so no detected
  incident goes unreported; silences and inhibition apply to it as to a firing one. One that
  was muted at its flushes (nothing sent) is checked again at each group_interval tick and
  told once the mute ends, if it is still open; if it resolves first, it resolves silently.

Every message after a group's first says what changed since the previous one this receiver
got (``payload["changes"]``, :mod:`alerts.changes`; what each message told is kept in the
group's ``told`` column). An acknowledged incident (:mod:`alerts.acks`) gets no reminders until
it changes materially, which lifts the acknowledgement, or resolves.

Silences, inhibition and time intervals are checked when a group flushes (as Alertmanager's
notification pipeline does), through :meth:`alerts.dispatch.Dispatcher.suppression`; a
suppressed notification is stored in the outbox with status ``suppressed`` and the reason.

Everything uses the caller's ``now`` (the injected clock) and the ``alert_groups`` table, written
in the caller's transaction: a restart neither loses a waiting notification nor sends early.

Three writers read-modify-write a group's row: a tick's commit (:meth:`AlertGroups.apply`),
the delivery thread's flush (:meth:`AlertGroups.flush`) and a dismissal
(:mod:`alerts.dismiss`, from the feedback server or the CLI, another process). On PostgreSQL
(READ COMMITTED) each locks the rows it reads (:func:`lock_groups`; the flush skips the ones
locked), so none writes back what it read over another's change: a dismissal overwrote the
page a concurrent flush had just sent (the page was never resolved), a commit that read before
a dismissal paged the dismissed incident again. SQLite serializes write transactions.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from alerts.acks import get_ack, lift_ack
from alerts.changes import diff, material_change, state
from alerts.display import merge_display
from alerts.payload import MAX_ANOMALIES
from monitor.model import Notification, severity_name
from monitor.store import Store, StoreTx, alert_groups_t, anomalies_t, incidents_t

if TYPE_CHECKING:
    from alerts.dispatch import Dispatcher
    from alerts.routing import Route
    from monitor.incidents import IncidentChange, OpenIncident

log = logging.getLogger(__name__)

__all__ = ["AlertGroups", "FlushResult", "WaitingGroup", "headline_of", "lock_groups",
           "merge_payloads", "next_tick", "waiting_groups"]

G = alert_groups_t


def lock_groups(tx: StoreTx, keys: Iterable[str]) -> None:
    """Row-lock the alert groups of the incidents ``keys`` until the transaction ends, in one
    order (incident key, receiver) so two writers locking several never deadlock; what the
    caller reads of them afterwards nobody else changes before it writes. PostgreSQL only:
    SQLite's write transactions (``BEGIN IMMEDIATE``) are serialized already."""
    if tx.conn.dialect.name != "postgresql":
        return
    ordered = sorted(set(keys))
    for chunk in (ordered[i:i + 500] for i in range(0, len(ordered), 500)):
        tx.conn.execute(sa.select(G.c.incident_key).where(G.c.incident_key.in_(chunk))
                        .order_by(G.c.incident_key, G.c.receiver).with_for_update()).all()


def _lifted(ack: Any, why: str) -> dict[str, Any]:
    """The ``changes.ack_lifted`` of a message that ends an acknowledgement: the team must
    read that reminders are back on, and why, or they take the incident for handled."""
    return {"by": ack.acked_by, "at": ack.acked_at.isoformat(),
            "reason": "severity" if why.startswith("severity") else "series"}


@dataclass(slots=True)
class FlushResult:
    enqueued: int = 0
    suppressed: int = 0
    by_receiver: Counter[str] = field(default_factory=Counter)  # enqueued, per receiver


def next_tick(last_flush: datetime, interval: timedelta, not_before: datetime) -> datetime:
    """The first flush time ``last_flush + k × interval`` (k ≥ 1) at or after ``not_before``.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
    >>> next_tick(t0, timedelta(minutes=5), t0 + timedelta(minutes=7)).minute
    10
    >>> next_tick(t0, timedelta(minutes=5), t0).minute  # never the flush just done
    5
    """
    k = max(1, math.ceil((not_before - last_flush) / interval))
    return last_flush + k * interval


def merge_payloads(waiting: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """One notification for several changes of a group: the incident as it is now (``new``),
    with the anomalies of all the changes (most severe first) and the first one's ``update``
    flag (the opening message stays the opening message)."""
    seen: dict[Any, dict[str, Any]] = {}
    for a in [*(waiting.get("anomalies") or []), *(new.get("anomalies") or [])]:
        seen[a.get("id") or id(a)] = dict(a)
    ranked = sorted(seen.values(), key=lambda a: (-(a.get("severity") or 0),
                                                  str(a.get("series"))))
    overlap = len(waiting.get("anomalies") or []) + len(new.get("anomalies") or []) - len(seen)
    total = int(waiting.get("anomalies_total") or 0) + int(new.get("anomalies_total") or 0)
    merged = {**new, "update": bool(waiting.get("update")), "anomalies": ranked[:MAX_ANOMALIES],
              "anomalies_total": total - overlap}
    if waiting.get("display") or new.get("display"):  # names of both's metrics and labels
        merged["display"] = merge_display(waiting.get("display"), new.get("display"))
    return merged


class AlertGroups:
    """Applies incident changes to the durable groups, and flushes the groups that are due."""

    def __init__(self, dispatcher: Dispatcher, receivers: Collection[str]) -> None:
        self.dispatcher = dispatcher
        self.receivers = set(receivers)  # receivers with a notifier (others drop alerts)

    # -- changes --------------------------------------------------------------------------

    def apply(
        self, tx: StoreTx, changes: Sequence[IncidentChange],
        payloads: Mapping[int, Mapping[str, Any]], now: datetime,
    ) -> None:
        """Record what ``changes`` have to say (``payloads``: by ``id(change)``)."""
        for change in changes:
            self.dispatcher.observe(change)
        lock_groups(tx, (c.incident.key for c in changes if payloads.get(id(c)) is not None))
        for change in changes:
            payload = payloads.get(id(change))
            if payload is None:
                continue
            if change.status == "resolved":
                self._resolved(tx, change.incident.key, payload, now)
            elif change.notify:
                labels = self.dispatcher.labels(change)
                for receiver, route in self.dispatcher.targets(change):
                    if receiver in self.receivers:
                        self._firing(tx, change, receiver, route, labels, payload, now)

    def _get(self, tx: StoreTx, key: str, receiver: str) -> Any:
        q = sa.select(G).where(G.c.incident_key == key, G.c.receiver == receiver)
        return tx.conn.execute(q).first()

    def _firing(self, tx: StoreTx, change: IncidentChange, receiver: str, route: Route,
                labels: Mapping[str, str], payload: Mapping[str, Any], now: datetime) -> None:
        key = change.incident.key
        row = self._get(tx, key, receiver)
        if row is not None and (dismissed := _dismissed(row)) is not None:
            if _level(change.incident.severity) <= _level(dismissed.get("severity")):
                return  # called not a problem (alerts/dismiss.py): quiet unless it worsens
            log.info("incident %s dismissed by %s has risen to %s: told again", key,
                     dismissed.get("by"), severity_name(change.incident.severity))
            tx.conn.execute(sa.delete(G).where(G.c.incident_key == key,
                                               G.c.receiver == receiver))
            row = None  # a new first message (a new PagerDuty alert)
        if row is None:
            tx.conn.execute(sa.insert(G).values(
                incident_key=key, receiver=receiver, route=route.path, labels=dict(labels),
                group_interval_s=route.group_interval.total_seconds(),
                repeat_interval_s=route.repeat_interval.total_seconds(), created_at=now,
                next_flush_at=now + route.group_wait, last_flush_at=None, last_sent_at=None,
                pending={**payload, "update": False}, pending_kind="opened",
                last_payload=None, seq=0))
            return
        told = row.last_sent_at is not None
        if row.pending is not None and row.pending_kind != "resolved":
            pending, kind = merge_payloads(row.pending, payload), row.pending_kind
        else:
            pending = {**payload, "update": told}
            kind = "updated" if told else "opened"
        if row.last_flush_at is None:  # still in group_wait
            due = row.next_flush_at
        else:
            due = next_tick(row.last_flush_at, timedelta(seconds=row.group_interval_s), now)
        tx.conn.execute(sa.update(G).where(G.c.incident_key == key, G.c.receiver == receiver)
                        .values(pending=pending, pending_kind=kind, next_flush_at=due,
                                labels=dict(labels)))

    def _resolved(self, tx: StoreTx, key: str, payload: Mapping[str, Any],
                  now: datetime) -> None:
        lift_ack(tx.conn, key, "resolved")  # the resolution is still sent
        rows = tx.conn.execute(sa.select(G).where(G.c.incident_key == key)).all()
        for row in rows:
            where = (G.c.incident_key == key, G.c.receiver == row.receiver)
            if _dismissed(row) is not None:  # its resolution went out when it was dismissed
                tx.conn.execute(sa.delete(G).where(*where))
                continue
            if row.last_sent_at is None and row.last_flush_at is None \
                    and row.pending is not None:  # opened and resolved before its first flush
                late = {**row.pending, "status": "resolved", "late": True, "update": False,
                        "resolved_at": payload.get("resolved_at"),
                        "title": f"{row.pending.get('title', '')}, already resolved"}
                tx.conn.execute(sa.update(G).where(*where).values(pending=late,
                                                                  pending_kind="late"))
                continue
            if row.last_sent_at is None:  # muted at every flush: nobody was told
                tx.conn.execute(sa.delete(G).where(*where))
                log.info("incident %s resolved before anything was sent to %s", key,
                         row.receiver)
                continue
            due = next_tick(row.last_flush_at, timedelta(seconds=row.group_interval_s), now) \
                if row.last_flush_at is not None else now
            tx.conn.execute(sa.update(G).where(*where).values(
                pending=dict(payload), pending_kind="resolved", next_flush_at=due))

    # -- flushing -------------------------------------------------------------------------

    def flush(self, tx: StoreTx, now: datetime,
              open_incidents: Iterable[OpenIncident] = (), *,
              group_wait: bool = False) -> FlushResult:
        """Turn every group due at ``now`` into an outbox row (or a suppressed one).

        ``group_wait=True`` also flushes the groups still in their ``group_wait`` (a new
        incident's first message): ``cxmon run --once`` has ticked every metric, so there is
        nothing more to gather, and it would otherwise exit with the message unsent.
        ``group_interval`` and ``repeat_interval`` keep their timing."""
        due = G.c.next_flush_at <= now
        if group_wait:
            due = sa.or_(due, sa.and_(G.c.last_flush_at.is_(None),
                                      G.c.next_flush_at.is_not(None)))
        q = sa.select(G).where(due).order_by(G.c.next_flush_at, G.c.incident_key)
        if tx.conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = tx.conn.execute(q).all()
        result = FlushResult()
        if not rows:
            return result
        opened = list(open_incidents)
        self._recall_labels(tx, opened)
        sent: list[Notification] = []
        muted: list[tuple[Notification, str]] = []
        for row in rows:
            self._flush_one(tx, row, now, opened, sent, muted)
        result.by_receiver = tx.enqueue_by_receiver(sent, now)
        result.enqueued = sum(result.by_receiver.values())
        result.suppressed = tx.record_suppressed(muted, now)
        for n, reason in muted:
            log.info("notification %s not sent to %s: %s", n.incident_key, n.receiver, reason)
        return result

    def _recall_labels(self, tx: StoreTx, opened: Sequence[OpenIncident]) -> None:
        """Give the dispatcher the labels the open incidents fired with (kept with their
        groups): after a restart it knew them only by their group, and an inhibition rule on
        ``alertname`` stopped muting what it had muted before."""
        keys = [inc.key for inc in opened]
        for chunk in (keys[i:i + 500] for i in range(0, len(keys), 500)):
            q = sa.select(G.c.incident_key, G.c.labels).where(G.c.incident_key.in_(chunk))
            for key, labels in tx.conn.execute(q):
                if labels:
                    self.dispatcher.remember(key, labels)

    def _flush_one(self, tx: StoreTx, row: Any, now: datetime, opened: list[OpenIncident],
                   sent: list[Notification], muted: list[tuple[Notification, str]]) -> None:
        where = (G.c.incident_key == row.incident_key, G.c.receiver == row.receiver)
        payload, kind = row.pending, row.pending_kind
        interval = timedelta(seconds=row.group_interval_s)
        repeat = timedelta(seconds=row.repeat_interval_s)
        if payload is None and row.last_sent_at is not None and (
                now - row.last_sent_at >= repeat):
            payload, kind = {**row.last_payload, "update": True, "repeat": True}, "repeat"
        last_sent, last_payload, told = row.last_sent_at, row.last_payload, row.told
        facts = _facts(tx, row.incident_key) if payload is not None and kind not in (
            "resolved", "late") else None
        if kind == "repeat" and facts is not None:  # a reminder: the incident as it is now
            payload = {**payload, "severity": max(int(payload.get("severity") or 0), facts[0])}
        lifted = None  # an acknowledgement this message ends (it says so)
        if kind == "repeat":
            remind, lifted = self._remind(tx, row.incident_key, facts, payload)
            if not remind:
                tx.conn.execute(sa.update(G).where(*where).values(  # acknowledged: check later
                    last_flush_at=now, next_flush_at=next_tick(now, interval, now + repeat),
                    seq=row.seq + 1))
                return
        now_state = None
        if facts is not None and payload is not None:
            now_state = _state_now(payload, facts, row)
            if last_sent is not None:  # an update or a reminder: say what changed
                before = told or {**_state_of(last_payload), "points": now_state["points"]}
                payload = {**payload, "changes": diff(before, now_state, last_sent.isoformat()),
                           "headline": headline_of(last_payload, payload)}
        if payload is not None:
            reason = None if kind == "resolved" else self.dispatcher.suppression(
                row.incident_key, row.labels, row.route, now, opened, receiver=row.receiver)
            if reason is None and kind != "repeat" and row.last_sent_at is not None \
                    and now_state is not None:  # a told update that changes it materially
                lifted = self._lift_if_material(tx, row.incident_key, now_state)
            if lifted is not None and isinstance(payload.get("changes"), Mapping):
                payload = {**payload, "changes": {**payload["changes"], "ack_lifted": lifted}}
            n = Notification(f"{row.incident_key}|{kind}|{now.isoformat()}|{row.receiver}",
                             row.receiver, row.incident_key, payload)
            if reason is None:
                sent.append(n)
                last_sent, last_payload, told = now, payload, now_state or told
            elif not _muted_before(row):  # one suppressed row per muted incident, not 12/h
                muted.append((n, reason))
        if kind in ("resolved", "late"):  # the group's last message
            tx.conn.execute(sa.delete(G).where(*where))
            return
        if last_sent is None and payload is not None:
            self._retry_muted(tx, row, now, payload, kind)
            return
        due = None
        if last_sent is not None:  # the reminder: the first flush tick after repeat_interval
            due = next_tick(now, interval, last_sent + repeat)
        tx.conn.execute(sa.update(G).where(*where).values(
            pending=None, pending_kind=None, last_flush_at=now, next_flush_at=due,
            last_sent_at=last_sent, last_payload=last_payload, told=told, seq=row.seq + 1))

    @staticmethod
    def _remind(tx: StoreTx, key: str, facts: _Facts | None,
                payload: Mapping[str, Any]) -> tuple[bool, dict[str, Any] | None]:
        """Whether a due reminder goes out: not while the incident is acknowledged, unless it
        changed materially since (which lifts the acknowledgement: returned, to be said)."""
        ack = get_ack(tx.conn, key)
        if ack is None:
            return True, None
        severity = int(payload.get("severity") or 0)  # the incident's, as it is now
        series = facts[1] if facts is not None and facts[1] is not None else ack.series
        why = material_change(ack.as_state(), severity, series)
        if why is None:
            log.info("incident %s acknowledged by %s: no reminder", key, ack.acked_by)
            return False, None
        lift_ack(tx.conn, key, why)
        return True, _lifted(ack, why)

    @staticmethod
    def _lift_if_material(tx: StoreTx, key: str,
                          now_state: Mapping[str, Any]) -> dict[str, Any] | None:
        """An update that changes the incident materially ends its acknowledgement, so the
        reminders resume after it; returns what the update says about that (or None)."""
        ack = get_ack(tx.conn, key)
        if ack is None:
            return None
        why = material_change(ack.as_state(), int(now_state["severity"]), now_state["series"])
        if why is None:
            return None
        lift_ack(tx.conn, key, why)
        return _lifted(ack, why)

    @staticmethod
    def _retry_muted(tx: StoreTx, row: Any, now: datetime, payload: Mapping[str, Any],
                     kind: str | None) -> None:
        """Nobody was told of this still-firing incident (silenced, inhibited, muted): keep
        its first message and check again at the next ``group_interval`` tick, as
        Alertmanager does. It was dropped: an incident opened during a maintenance window
        or a silence was never told after the window or the silence ended."""
        tx.conn.execute(sa.update(G).where(
            G.c.incident_key == row.incident_key, G.c.receiver == row.receiver).values(
            pending=dict(payload), pending_kind=kind, last_flush_at=now,
            next_flush_at=next_tick(now, timedelta(seconds=row.group_interval_s), now),
            seq=row.seq + 1))


#: (severity, series, anomalous points) of an incident in the store; series and points are
#: None when the store does not have the incident (then the payloads say what they can).
_Facts = tuple[int, list[str] | None, int | None]


def _facts(tx: StoreTx, key: str) -> _Facts:
    """The incident as stored now: a payload lists only its own change's anomalies (at most
    20), while an update must say how many points and which series are new overall."""
    inc = tx.conn.execute(sa.select(incidents_t.c.id, incidents_t.c.severity,
                                    incidents_t.c.summary)
                          .where(incidents_t.c.key == key)).first()
    if inc is None:
        return 0, None, None
    points = tx.conn.execute(sa.select(sa.func.count()).select_from(anomalies_t)
                             .where(anomalies_t.c.incident_id == inc.id)).scalar_one()
    series = (inc.summary or {}).get("series")
    return int(inc.severity), list(series) if series is not None else None, int(points)


def _state_now(payload: Mapping[str, Any], facts: _Facts, row: Any) -> dict[str, Any]:
    """What a message with ``payload`` tells; without the incident in the store, the series
    and points told before plus the payload's own."""
    _, series, points = facts
    before = row.told or {}
    if series is None:
        series = [*(before.get("series") or []),
                  *(str(a.get("series")) for a in payload.get("anomalies") or []
                    if a.get("series"))]
    if points is None:
        extra = 0 if payload.get("repeat") else int(payload.get("anomalies_total") or 0)
        points = int(before.get("points") or 0) + extra
    return state(payload, series, points)


def _state_of(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """The state a message told, from its payload alone (a group from before ``told`` was
    kept): its series are all that is known of it (its points: unknown)."""
    payload = payload or {}
    anomalies = [a for a in payload.get("anomalies") or [] if isinstance(a, Mapping)]
    return state(payload, [str(a["series"]) for a in anomalies if a.get("series")], 0)


#: anomalies an update keeps of everything this receiver was told (``payload["headline"]``)
HEADLINE = 3


def headline_of(before: Mapping[str, Any] | None,
                payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The incident's worst anomalies as told to this receiver so far, most severe first, one
    per series (its most severe point): what an update's PagerDuty summary leads with. An
    update's own ``anomalies`` are only what is new; PagerDuty's alert takes the summary of
    the latest trigger, and read as if a new low series were the incident's headline, at the
    incident's (critical) severity.

    >>> first = {"anomalies": [{"series": "uk", "severity": 80, "labels": {"r": "uk"}}]}
    >>> [a["series"] for a in headline_of(first, {"anomalies": [
    ...     {"series": "us", "severity": 30, "labels": {"r": "us"}}]})]
    ['uk', 'us']
    """
    told = (before or {}).get("headline") or (before or {}).get("anomalies") or []
    worst: dict[str, dict[str, Any]] = {}
    for a in [*told, *(payload.get("anomalies") or [])]:
        if not isinstance(a, Mapping):
            continue
        key = str(a.get("series") or a.get("id"))
        if key not in worst or (a.get("severity") or 0) >= (worst[key].get("severity") or 0):
            worst[key] = dict(a)
    ranked = sorted(worst.values(), key=lambda a: (-(a.get("severity") or 0),
                                                   len(a.get("labels") or {}),
                                                   str(a.get("series"))))
    return ranked[:HEADLINE]


def _dismissed(row: Any) -> Mapping[str, Any] | None:
    """The dismissal of a group whose incident was called not a problem (kept in ``told`` by
    :mod:`alerts.dismiss`: ``{"by", "at", "label", "severity"}``), or None."""
    told = row.told if isinstance(row.told, Mapping) else {}
    found = told.get("dismissed")
    return found if isinstance(found, Mapping) else None


def _level(severity: Any) -> int:
    """0-3: low, medium, high, critical."""
    return ("low", "medium", "high", "critical").index(severity_name(int(severity or 0)))


def _muted_before(row: Any) -> bool:
    """Flushed before and nothing sent: the suppressed row is already in the outbox."""
    return row.last_flush_at is not None and row.last_sent_at is None


def next_flush_at(store: Store) -> datetime | None:
    """When the next group is due (simulated time jumps there), or None."""
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.min(G.c.next_flush_at,
                                                  type_=G.c.next_flush_at.type))).scalar()


@dataclass(frozen=True, slots=True)
class WaitingGroup:
    """A notification held back by group timing (``cxmon alerts status``)."""

    incident_key: str
    receiver: str
    kind: str  # opened | updated | resolved
    due: datetime | None
    first: bool  # still in group_wait (nothing sent yet to this receiver)
    group: Mapping[str, Any] | None = None  # the incident's group labels (its waiting payload's)

    @property
    def timer(self) -> str:
        """What holds it back; a first message past its group_wait was muted at a flush."""
        if self.first:
            return "group_wait"
        return "muted, checked again at group_interval" if self.kind == "opened" \
            else "group_interval"


def waiting_groups(store: Store) -> list[WaitingGroup]:
    """Groups with a notification not yet in the outbox, soonest first: a new incident's
    first message in ``group_wait``, or an update / resolution waiting for ``group_interval``
    (reminders, due after ``repeat_interval``, are not listed)."""
    q = (sa.select(G.c.incident_key, G.c.receiver, G.c.pending_kind, G.c.next_flush_at,
                   G.c.last_flush_at, G.c.pending)
         .where(G.c.pending_kind.is_not(None))  # (``pending`` may be a JSON null)
         .order_by(G.c.next_flush_at, G.c.incident_key, G.c.receiver))
    with store.engine.connect() as conn:
        return [WaitingGroup(r.incident_key, r.receiver, r.pending_kind,
                             r.next_flush_at, r.last_flush_at is None,
                             r.pending.get("group") if isinstance(r.pending, Mapping) else None)
                for r in conn.execute(q)]
