"""Durable delivery: every notification is in the store before anything is sent; this worker
sends what is due, retries with exponential backoff, and dead-letters after too many failures.

At-least-once: a notification is marked sent only after its notifier returned, so a crash in
between re-sends it; notifiers get the idempotency key to deduplicate (``Notifier.deliver``).
Order per incident and receiver is kept: only the oldest pending notification of an (incident,
receiver) can be claimed (``heads_only``), so an update never overtakes the message that opened
the incident, even while that one waits for its retry. Another receiver is not held back.
Once a receiver is unreachable in a pass (a timeout, a connection error, a 429: a failure
every notification to it would meet), its other notifications wait for the next pass
(unattempted, attempts unchanged): a receiver that is down or hangs costs one timeout per
pass, not one per queued incident, so the pass soon gets to the other receivers' rows.
Other failures (a 500 about one payload) do not hold its other incidents back.

A pass uses only the outbox rows and the notifiers, never what a tick holds (incidents,
alert groups): the scheduler runs passes beside the ticks, in a thread of their own. One
worker runs one pass at a time (the scheduler's send lock): a pass that leaves rows for later
releases all of this worker's leases, which would free a row a second pass of the same worker
is still sending.

Several workers may share one store (``cxmon run`` and ``cxmon alerts deliver`` processes): a
worker claims rows with a lease (:meth:`monitor.store.Store.claim_due`), so no row is sent by
two workers; a crashed worker's rows come back when its lease expires, or at once when it ran
on this host and its process is gone. A worker whose lease expired mid-send cannot settle the
row any more (its ``mark_sent`` is refused); the new owner's re-send is deduplicated by the
idempotency key, as after any crash.

How hard to try is each receiver's own (``alerting.delivery``, overridden by
``receivers[].delivery``: a pager deserves more patience than a chat channel). It is read when
a notification fails, from the receiver's notifier built from the running config, not stored
with the row: rows written before a restart or a config change follow the new values, and
``cxmon alerts retry`` (attempts back to 0) gives a requeued one the receiver's full budget.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from alerts.notifiers.base import Notifier, NotifyError
from monitor.clock import Clock
from monitor.durations import format_duration
from monitor.store import OutboxRow, Store

log = logging.getLogger(__name__)

#: A pass claims at most this many batches (each of ``limit`` rows).
MAX_BATCHES = 100


class RetrySettings(Protocol):
    """What a receiver's config says about retries (:class:`monitor.config.DeliveryConfig`,
    read duck-typed so this module does not import the config package)."""

    @property
    def max_attempts(self) -> int: ...
    @property
    def backoff(self) -> timedelta: ...
    @property
    def max_backoff(self) -> timedelta: ...


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard to try before a notification is dead-lettered, and how long a claim lasts."""

    max_attempts: int = 10
    base_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(minutes=15)
    #: Longer than any one send (notifier timeouts are 10-30 s), short enough that a crashed
    #: worker on another host delays its rows only briefly.
    lease: timedelta = timedelta(minutes=2)
    #: The longest ``Retry-After`` honoured: a receiver's ``Retry-After: 1e12`` (or ``inf``)
    #: overflowed the retry time, crashed the worker before the attempt was counted, and the
    #: notification was re-sent on every pass, never dead-lettered.
    max_retry_after: timedelta = timedelta(days=1)
    #: How long a notification for a receiver this worker does not have waits for a worker
    #: that has it (two workers on one store during a config roll-out) before it is
    #: dead-lettered as "not configured".
    orphan_after: timedelta = timedelta(minutes=10)

    def configured(self, settings: RetrySettings | None) -> DeliveryPolicy:
        """This policy with a receiver's configured attempts and backoff (lease, Retry-After
        cap and orphan grace stay the worker's)."""
        if settings is None:
            return self
        return replace(self, max_attempts=settings.max_attempts, base_delay=settings.backoff,
                       max_delay=settings.max_backoff)

    def delay(self, attempts: int, hint: float | None = None) -> timedelta:
        """Backoff after ``attempts`` failures, never shorter than the receiver's hint
        (itself capped at ``max_retry_after``).

        Doubled in float seconds with the exponent bounded: with a configurable
        ``max_attempts`` (say 100) ``base_delay * 2**99`` overflows ``timedelta``, which
        would crash the worker before the attempt is counted (re-sent on every pass, never
        dead-lettered)."""
        doubled = self.base_delay.total_seconds() * 2.0 ** min(max(attempts - 1, 0), 64)
        backoff = timedelta(seconds=min(doubled, self.max_delay.total_seconds()))
        if hint is not None and not math.isnan(hint):
            cap = self.max_retry_after.total_seconds()
            backoff = max(backoff, timedelta(seconds=min(max(hint, 0.0), cap)))
        return backoff

    def schedule(self) -> list[timedelta]:
        """The waits between attempts when every one fails without a hint; their sum is how
        long a notification can stay pending before it is dead-lettered (what a
        ``give_up_after`` would say).

        >>> [int(d.total_seconds()) for d in DeliveryPolicy().schedule()]
        [5, 10, 20, 40, 80, 160, 320, 640, 900]
        >>> from monitor.durations import format_duration
        >>> format_duration(sum(DeliveryPolicy().schedule(), timedelta()))
        '36m15s'
        """
        return [self.delay(n) for n in range(1, self.max_attempts)]


@dataclass(slots=True)
class DeliveryReport:
    #: notifications the flush before this delivery wrote to the outbox, per receiver
    enqueued: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0  # rows whose lease expired mid-send (another worker owns them now)
    #: rows not attempted because their receiver was unreachable earlier in this pass
    #: (``NotifyError.unreachable``): a receiver that hangs costs one timeout per pass, not
    #: one per queued incident (the other receivers' rows are not kept waiting behind it);
    #: tried again by the next pass
    deferred: int = 0
    errors: list[str] = field(default_factory=list)
    #: send attempts per (receiver, outcome: ``sent`` | ``retry`` | ``dead``): the exporter
    #: counts them, so a receiver that fails every attempt shows on ``/metrics`` while its
    #: notifications are still pending (the outbox gauges only show where they ended up)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)


def worker_id() -> str:
    """``host:pid:random``: unique per worker; host and pid let a sibling on the same host
    see that the process is gone (:func:`local_owner_dead`)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def local_owner_dead(owner: str, host: str | None = None) -> bool:
    """True if ``owner`` (a :func:`worker_id`) ran on this host and its process is gone."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != (host or socket.gethostname()):
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def _cut_secret(message: str, secrets: Sequence[str]) -> str:
    """``message`` without the start of a secret that its cut (a receiver's reason is cut at
    120 characters, ``…``) left at its end, where a whole-value scrub cannot find it.

    >>> _cut_secret("token abc and xyz123…", ["xyz1234567"])
    'token abc and ***…'
    """
    if not message.endswith("…"):
        return message
    head = message[:-1]
    for secret in secrets:
        for k in range(len(secret) - 1, 3, -1):  # at least 4 characters, or noise matches
            if head.endswith(secret[:k]):
                return head[:-k] + "***…"
    return message


class OutboxWorker:
    """Sends due notifications from the store's outbox through the receivers' notifiers."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        clock: Clock,
        policy: DeliveryPolicy | None = None,
        *,
        owner: str | None = None,
        policies: Mapping[str, DeliveryPolicy] | None = None,
    ) -> None:
        """``policy``: the worker's lease and grace periods, and the retries of a receiver
        whose notifier carries no config (built in code, as in tests). ``policies``: a
        receiver's whole policy, given explicitly (wins over its notifier's config)."""
        self.store = store
        self.notifiers = notifiers
        self.clock = clock
        self.policy = policy or DeliveryPolicy()
        self.policies = dict(policies or {})
        self.owner = owner or worker_id()
        #: receivers that asked to wait (a 429's Retry-After), until when: their other rows
        #: are not tried before, or a long rate limit spent one attempt of every queued row
        #: per pass and dead-lettered them
        self.held: dict[str, datetime] = {}

    def policy_for(self, receiver: str) -> DeliveryPolicy:
        """The retry policy of ``receiver``: given in ``policies``, else its config's
        (``alerting.delivery`` with the receiver's ``delivery`` over it), which
        :func:`alerts.notifiers.factory.receiver_notifier` puts on the notifier as
        ``delivery``, else the worker's. Read at each failure, so a restart with a new
        config applies it to the rows already queued."""
        if receiver in self.policies:
            return self.policies[receiver]
        settings: RetrySettings | None = getattr(self.notifiers.get(receiver), "delivery", None)
        return self.policy.configured(settings)

    def deliver_due(self, limit: int = 500) -> DeliveryReport:
        """Send everything due now: claim the heads of the queues, send them, and claim again
        (the next message of a queue becomes its head once the previous one is settled)."""
        report = DeliveryReport()
        self._release_dead_local_workers()
        start = self.clock.now()
        self.held = {r: until for r, until in self.held.items() if until > start}
        failing: set[str] = set(self.held)  # receivers unreachable or waiting in this pass
        for _ in range(MAX_BATCHES):
            now = self.clock.now()
            rows = self.store.claim_due(now, limit, lease=self.policy.lease,
                                        owner=self.owner, heads_only=True,
                                        receivers=list(self.notifiers),
                                        orphaned_before=now - self.policy.orphan_after)
            if not rows:
                break
            for row in rows:
                if row.receiver in failing:
                    report.deferred += 1
                    continue
                if self._deliver(row, report):
                    failing.add(row.receiver)
        if report.deferred:  # unattempted: claimable again by the next pass, attempts unchanged
            self.store.release_leases([self.owner])
            log.info("delivery: %d notification(s) to %s left for a later pass (the "
                     "receiver did not answer in this one, or asked to wait)", report.deferred,
                     ", ".join(sorted(failing)))
        return report

    def _deliver(self, row: OutboxRow, report: DeliveryReport) -> bool:
        """Send one row and settle it; True if its receiver was unreachable."""
        notifier = self.notifiers.get(row.receiver)
        if notifier is None:
            self._settle(self.store.mark_dead(
                row.id, f"receiver {row.receiver!r} is not configured in any worker that "
                f"polled the outbox for {format_duration(self.policy.orphan_after)}",
                owner=self.owner), row, report)
            report.dead += 1
            report.attempts[row.receiver, "dead"] += 1
            return False
        try:
            deliver = getattr(notifier, "deliver", None)  # duck-typed ones may only send
            if deliver is None:
                notifier.send(row.payload)
            else:
                deliver(row.payload, row.idempotency_key)
        except NotifyError as exc:
            self._failed(row, exc, report)
            if exc.retryable and exc.unreachable and exc.retry_after:
                wait = self.policy_for(row.receiver).delay(1, exc.retry_after)
                self.held[row.receiver] = self.clock.now() + wait
            return exc.retryable and exc.unreachable
        except Exception as exc:  # a notifier bug must not stop delivery of the rest
            self._failed(row, NotifyError(f"{type(exc).__name__}: {exc}", retryable=True),
                         report)
            return False
        else:
            self._settle(self.store.mark_sent(row.id, self.clock.now(), owner=self.owner),
                         row, report)
            report.sent += 1
            report.attempts[row.receiver, "sent"] += 1
        return False

    def _scrubbed(self, receiver: str, message: str) -> str:
        """``message`` without the receiver's credentials (``secrets``, which
        :func:`alerts.notifiers.factory.receiver_notifier` puts on its notifier) and URL
        secrets: a receiver's error may echo its token, and this text is logged, stored as
        ``last_error`` and shown by ``cxmon alerts status``."""
        from monitor.redact import redact_text
        from sources.scrubbing import scrub_secrets

        secrets = getattr(self.notifiers.get(receiver), "secrets", None) or ()
        return redact_text(_cut_secret(scrub_secrets(message, secrets), secrets))

    def _settle(self, ok: bool, row: OutboxRow, report: DeliveryReport) -> None:
        if not ok:
            report.lost += 1
            log.warning("notification %s to %s: lease expired during the send; another worker "
                        "owns it now", row.id, row.receiver)

    def _release_dead_local_workers(self) -> None:
        """Rows leased by a worker of this host whose process is gone (``kill -9``) are free
        again at once, instead of after the lease."""
        dead = [o for o in self.store.lease_owners(self.clock.now())
                if o != self.owner and local_owner_dead(o)]
        if dead:
            n = self.store.release_leases(dead)
            log.warning("released %d notification(s) held by dead worker(s) %s", n,
                        ", ".join(dead))

    def _failed(self, row: OutboxRow, exc: NotifyError, report: DeliveryReport) -> None:
        message = self._scrubbed(row.receiver, str(exc))
        attempts = row.attempts + 1
        policy = self.policy_for(row.receiver)
        report.errors.append(f"{row.receiver}: {message}")
        if not exc.retryable or attempts >= policy.max_attempts:
            self._settle(self.store.mark_dead(row.id, message, owner=self.owner), row, report)
            report.dead += 1
            report.attempts[row.receiver, "dead"] += 1
            log.error("notification %s to %s dead-lettered after %d attempt(s): %s",
                      row.id, row.receiver, attempts, message)
            return
        when = self.clock.now() + policy.delay(attempts, exc.retry_after)
        self._settle(self.store.mark_retry(row.id, message, when, owner=self.owner), row,
                     report)
        report.retried += 1
        report.attempts[row.receiver, "retry"] += 1
        log.warning("notification %s to %s failed (attempt %d), retry at %s: %s",
                    row.id, row.receiver, attempts, when.isoformat(timespec="seconds"), message)
