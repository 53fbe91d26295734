"""Delivery receipts: what a notifier has already done for one notification.

The outbox is at-least-once: a notification whose send succeeded but whose ``mark_sent`` was lost
(``kill -9`` in between) is sent again. A notifier that cannot be told "this is a duplicate"
(Slack) records a receipt *before* its call (``start``) and the message id *after* it
(``posted``). On a re-send it finds the receipt: with an id, nothing is posted again; without
one the outcome is unknown and the notifier looks the message up (Slack: by the idempotency key
in the message metadata). Receipts also remember an incident's first message, the thread its
follow-ups go to.

Two implementations: :class:`StoreReceipts` (the ``delivery_receipts`` table, what the monitor
uses) and :class:`MemoryReceipts` (tests, or a notifier used without a store).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from monitor.clock import Clock, SystemClock
from monitor.store import Store, delivery_receipts_t, notifications_t

__all__ = ["MemoryReceipts", "Receipt", "Receipts", "StoreReceipts"]


@dataclass(frozen=True, slots=True)
class Receipt:
    idempotency_key: str
    receiver: str
    incident_key: str
    started_at: datetime
    thread_ts: str | None = None  # the thread the message goes to (None: top level)
    channel: str | None = None  # the channel id Slack answered with
    ts: str | None = None  # the message id, once posted
    posted_at: datetime | None = None


class Receipts(Protocol):
    def get(self, idempotency_key: str) -> Receipt | None: ...

    def start(self, idempotency_key: str, receiver: str, incident_key: str,
              thread_ts: str | None, payload: Mapping[str, Any]) -> Receipt: ...

    def posted(self, idempotency_key: str, channel: str, ts: str) -> None: ...

    def discard(self, idempotency_key: str) -> None:
        """Forget a started receipt whose call surely failed (the next attempt posts)."""
        ...

    def thread(self, incident_key: str, receiver: str) -> Receipt | None:
        """The incident's first top-level message to this receiver, if one was posted."""
        ...

    def payload(self, idempotency_key: str) -> Mapping[str, Any] | None:
        """The payload a receipt's message was rendered from (to re-render it)."""
        ...

    def channel_of(self, receiver: str) -> str | None:
        """The channel id Slack answered with for this receiver before, if any."""
        ...


class MemoryReceipts:
    """Receipts in a dict (lost on restart)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.rows: dict[str, Receipt] = {}
        self.payloads: dict[str, Mapping[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, idempotency_key: str) -> Receipt | None:
        return self.rows.get(idempotency_key)

    def start(self, idempotency_key: str, receiver: str, incident_key: str,
              thread_ts: str | None, payload: Mapping[str, Any]) -> Receipt:
        with self._lock:
            self.payloads.setdefault(idempotency_key, payload)
            return self.rows.setdefault(idempotency_key, Receipt(
                idempotency_key, receiver, incident_key, self.clock.now(), thread_ts))

    def posted(self, idempotency_key: str, channel: str, ts: str) -> None:
        with self._lock:
            row = self.rows[idempotency_key]
            self.rows[idempotency_key] = replace(row, channel=channel, ts=ts,
                                                 posted_at=self.clock.now())

    def discard(self, idempotency_key: str) -> None:
        with self._lock:
            self.rows.pop(idempotency_key, None)

    def thread(self, incident_key: str, receiver: str) -> Receipt | None:
        roots = [r for r in self.rows.values()
                 if r.incident_key == incident_key and r.receiver == receiver
                 and r.thread_ts is None and r.ts is not None]
        return min(roots, key=lambda r: (r.posted_at or r.started_at, r.ts or ""), default=None)

    def payload(self, idempotency_key: str) -> Mapping[str, Any] | None:
        return self.payloads.get(idempotency_key)

    def channel_of(self, receiver: str) -> str | None:
        return next((r.channel for r in self.rows.values()
                     if r.receiver == receiver and r.channel), None)


class StoreReceipts:
    """Receipts in the store's ``delivery_receipts`` table (survive restarts)."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()

    def get(self, idempotency_key: str) -> Receipt | None:
        q = sa.select(delivery_receipts_t).where(
            delivery_receipts_t.c.idempotency_key == idempotency_key)
        with self.store.engine.connect() as conn:
            row = conn.execute(q).first()
        return _receipt(row._mapping) if row is not None else None

    def start(self, idempotency_key: str, receiver: str, incident_key: str,
              thread_ts: str | None, payload: Mapping[str, Any]) -> Receipt:
        """(The payload is in the outbox already: not stored twice.)"""
        row = Receipt(idempotency_key, receiver, incident_key, self.clock.now(), thread_ts)
        try:
            with self.store.transaction() as tx:
                tx.conn.execute(sa.insert(delivery_receipts_t).values(
                    idempotency_key=idempotency_key, receiver=receiver,
                    incident_key=incident_key, thread_ts=thread_ts,
                    started_at=row.started_at))
        except IntegrityError:  # started before (by a crashed run): keep the first
            existing = self.get(idempotency_key)
            assert existing is not None
            return existing
        return row

    def posted(self, idempotency_key: str, channel: str, ts: str) -> None:
        with self.store.transaction() as tx:
            tx.conn.execute(
                sa.update(delivery_receipts_t)
                .where(delivery_receipts_t.c.idempotency_key == idempotency_key)
                .values(channel=channel, ts=ts, posted_at=self.clock.now()))

    def discard(self, idempotency_key: str) -> None:
        t = delivery_receipts_t
        with self.store.transaction() as tx:
            tx.conn.execute(sa.delete(t).where(t.c.idempotency_key == idempotency_key,
                                               t.c.ts.is_(None)))

    def thread(self, incident_key: str, receiver: str) -> Receipt | None:
        t = delivery_receipts_t
        q = (
            sa.select(t)
            .where(t.c.incident_key == incident_key, t.c.receiver == receiver,
                   t.c.thread_ts.is_(None), t.c.ts.is_not(None))
            .order_by(t.c.posted_at, t.c.ts)
            .limit(1)
        )
        with self.store.engine.connect() as conn:
            row = conn.execute(q).first()
        return _receipt(row._mapping) if row is not None else None

    def payload(self, idempotency_key: str) -> Mapping[str, Any] | None:
        q = sa.select(notifications_t.c.payload).where(
            notifications_t.c.idempotency_key == idempotency_key)
        with self.store.engine.connect() as conn:
            value = conn.execute(q).scalar_one_or_none()
        return dict(value) if value else None

    def channel_of(self, receiver: str) -> str | None:
        t = delivery_receipts_t
        q = sa.select(t.c.channel).where(t.c.receiver == receiver,
                                         t.c.channel.is_not(None)).limit(1)
        with self.store.engine.connect() as conn:
            return conn.execute(q).scalar_one_or_none()


def _receipt(m: Any) -> Receipt:
    return Receipt(
        idempotency_key=m["idempotency_key"], receiver=m["receiver"],
        incident_key=m["incident_key"], started_at=m["started_at"], thread_ts=m["thread_ts"],
        channel=m["channel"], ts=m["ts"], posted_at=m["posted_at"],
    )
