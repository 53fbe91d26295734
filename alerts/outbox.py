"""Durable delivery: every notification is in the store before anything is sent; this worker
sends what is due, retries with exponential backoff, and dead-letters after too many failures.

At-least-once: a notification is marked sent only after its notifier returned, so a crash in
between re-sends it; notifiers get the idempotency key to deduplicate (``Notifier.deliver``).
Order per incident and receiver is kept: a notification is sent only when no earlier one of the
same incident to the same receiver is still pending (e.g. waiting for its retry), so an update
never overtakes the message that opened the incident. Another receiver is not held back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from alerts.notifiers.base import Notifier, NotifyError
from monitor.clock import Clock
from monitor.store import IN_CHUNK, OutboxRow, Store, notifications_t

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard to try before a notification is dead-lettered."""

    max_attempts: int = 10
    base_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(minutes=15)

    def delay(self, attempts: int, hint: float | None = None) -> timedelta:
        """Backoff after ``attempts`` failures, never shorter than the receiver's hint."""
        backoff = min(self.base_delay * (2 ** max(attempts - 1, 0)), self.max_delay)
        if hint is not None:
            backoff = max(backoff, timedelta(seconds=hint))
        return backoff


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


class OutboxWorker:
    """Sends due notifications from the store's outbox through the receivers' notifiers."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.clock = clock
        self.policy = policy or DeliveryPolicy()

    def deliver_due(self, limit: int = 500) -> DeliveryReport:
        """One pass over what is due now."""
        report = DeliveryReport()
        rows = self.store.claim_due(self.clock.now(), limit)
        pending = self._pending_ids(rows)
        blocked: set[tuple[str, str]] = set()
        for row in rows:
            stream = (row.incident_key, row.receiver)
            queue = pending.get(stream) or [row.id]
            if stream in blocked or queue[0] < row.id:
                continue  # an earlier notification of this incident is still pending
            notifier = self.notifiers.get(row.receiver)
            if notifier is None:
                self.store.mark_dead(row.id, f"receiver {row.receiver!r} is not configured")
                report.dead += 1
                continue
            try:
                deliver = getattr(notifier, "deliver", None)  # duck-typed ones may only send
                if deliver is None:
                    notifier.send(row.payload)
                else:
                    deliver(row.payload, row.idempotency_key)
            except NotifyError as exc:
                self._failed(row.id, row.attempts + 1, row.receiver, exc, report)
                blocked.add(stream)
            except Exception as exc:  # a notifier bug must not stop delivery of the rest
                err = NotifyError(f"{type(exc).__name__}: {exc}", retryable=True)
                self._failed(row.id, row.attempts + 1, row.receiver, err, report)
                blocked.add(stream)
            else:
                self.store.mark_sent(row.id, self.clock.now())
                report.sent += 1
                if queue[0] == row.id:
                    queue.pop(0)
        return report

    def _pending_ids(self, rows: list[OutboxRow]) -> dict[tuple[str, str], list[int]]:
        """Pending notification ids, oldest first, per (incident, receiver) of ``rows``
        (due or not: one waiting for its retry holds back the later ones)."""
        t = notifications_t
        keys = sorted({r.incident_key for r in rows})
        out: dict[tuple[str, str], list[int]] = {}
        with self.store.engine.connect() as conn:
            for i in range(0, len(keys), IN_CHUNK):
                q = (sa.select(t.c.incident_key, t.c.receiver, t.c.id)
                     .where(t.c.status == "pending", t.c.incident_key.in_(keys[i:i + IN_CHUNK]))
                     .order_by(t.c.id))
                for k, r, nid in conn.execute(q):
                    out.setdefault((k, r), []).append(int(nid))
        return out

    def _failed(
        self, nid: int, attempts: int, receiver: str, exc: NotifyError, report: DeliveryReport
    ) -> None:
        message = str(exc)
        report.errors.append(f"{receiver}: {message}")
        if not exc.retryable or attempts >= self.policy.max_attempts:
            self.store.mark_dead(nid, message)
            report.dead += 1
            log.error("notification %s to %s dead-lettered after %d attempt(s): %s",
                      nid, receiver, attempts, message)
            return
        when = self.clock.now() + self.policy.delay(attempts, exc.retry_after)
        self.store.mark_retry(nid, message, when)
        report.retried += 1
        log.warning("notification %s to %s failed (attempt %d), retry at %s: %s",
                    nid, receiver, attempts, when.isoformat(), message)
