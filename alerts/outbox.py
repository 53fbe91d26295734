"""Durable delivery: every notification is in the store before anything is sent; this worker
sends what is due, retries with exponential backoff, and dead-letters after too many failures.

At-least-once: a notification is marked sent only after its notifier returned, so a crash in
between re-sends it; receivers dedup on the idempotency key. Order per incident is kept: once
one notification of an incident fails, the later ones of that incident wait for the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from alerts.notifiers.base import Notifier, NotifyError
from monitor.clock import Clock
from monitor.store import Store

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
        blocked: set[str] = set()
        for row in self.store.claim_due(self.clock.now(), limit):
            if row.incident_key in blocked:
                continue
            notifier = self.notifiers.get(row.receiver)
            if notifier is None:
                self.store.mark_dead(row.id, f"receiver {row.receiver!r} is not configured")
                report.dead += 1
                continue
            try:
                notifier.send(row.payload)
            except NotifyError as exc:
                self._failed(row.id, row.attempts + 1, row.receiver, exc, report)
                blocked.add(row.incident_key)
            except Exception as exc:  # a notifier bug must not stop delivery of the rest
                err = NotifyError(f"{type(exc).__name__}: {exc}", retryable=True)
                self._failed(row.id, row.attempts + 1, row.receiver, err, report)
                blocked.add(row.incident_key)
            else:
                self.store.mark_sent(row.id, self.clock.now())
                report.sent += 1
        return report

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
