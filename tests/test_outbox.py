"""Durable delivery: retries with backoff, Retry-After, dead letters, order per incident."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.notifiers.base import Notifier, NotifyError
from alerts.outbox import DeliveryPolicy, OutboxWorker
from monitor.clock import FakeClock
from monitor.model import Notification
from monitor.store import Store

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)


class Flaky(Notifier):
    """Fails the first ``failures`` sends, then records what it receives."""

    def __init__(self, failures: int = 0, *, retryable: bool = True,
                 retry_after: float | None = None, unreachable: bool = False) -> None:
        self.failures = failures
        self.retryable = retryable
        self.retry_after = retry_after
        self.unreachable = unreachable
        self.received: list[Mapping[str, Any]] = []

    def send(self, payload: Mapping[str, Any]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise NotifyError("server error", retryable=self.retryable,
                              retry_after=self.retry_after, unreachable=self.unreachable)
        self.received.append(payload)


def enqueue(store: Store, *items: tuple[str, str, int]) -> None:
    with store.transaction() as tx:
        tx.enqueue([Notification(f"{inc}-{n}", rcv, inc, {"n": n}) for inc, rcv, n in items], T0)


def test_retries_with_backoff_until_sent(store: Store) -> None:
    clock = FakeClock(T0)
    slack = Flaky(failures=2)
    worker = OutboxWorker(store, {"slack": slack}, clock,
                          DeliveryPolicy(base_delay=timedelta(seconds=10)))
    enqueue(store, ("i1", "slack", 1))
    assert worker.deliver_due().retried == 1
    assert worker.deliver_due().retried == 0  # not due yet: backoff
    clock.advance(timedelta(seconds=10))
    assert worker.deliver_due().retried == 1  # second failure, next delay is 20 s
    clock.advance(timedelta(seconds=19))
    assert worker.deliver_due().sent == 0
    clock.advance(timedelta(seconds=1))
    assert worker.deliver_due().sent == 1
    assert slack.received == [{"n": 1}]
    assert store.outbox_counts() == {"pending": 0, "sent": 1, "dead": 0, "suppressed": 0}
    assert store.notifications("sent")[0].attempts == 2


def test_retry_after_hint_is_honoured(store: Store) -> None:
    clock = FakeClock(T0)
    worker = OutboxWorker(store, {"slack": Flaky(failures=1, retry_after=120)}, clock)
    enqueue(store, ("i1", "slack", 1))
    worker.deliver_due()
    assert store.notifications("pending")[0].next_attempt_at == T0 + timedelta(seconds=120)


def test_the_retry_log_line_gives_the_retry_time_in_whole_seconds(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """The line a journal shows (docs/operations.md, Logs): ``retry at
    2026-01-05T10:00:05+00:00``, not the clock's microseconds."""
    import logging

    clock = FakeClock(T0 + timedelta(microseconds=123456))
    worker = OutboxWorker(store, {"hook": Flaky(failures=1)}, clock)
    enqueue(store, ("i1", "hook", 1))
    with caplog.at_level(logging.WARNING, logger="alerts.outbox"):
        worker.deliver_due()
    assert ("notification 1 to hook failed (attempt 1), retry at 2026-01-05T10:00:05+00:00: "
            "server error") in caplog.text


def test_dead_letter_after_max_attempts_and_on_fatal_errors(store: Store) -> None:
    clock = FakeClock(T0)
    worker = OutboxWorker(
        store,
        {"down": Flaky(failures=99), "bad": Flaky(failures=1, retryable=False)},
        clock,
        DeliveryPolicy(max_attempts=3, base_delay=timedelta(seconds=1),
                       orphan_after=timedelta(minutes=3)),
    )
    enqueue(store, ("i1", "down", 1), ("i2", "bad", 1), ("i3", "unknown", 1))
    for _ in range(5):
        worker.deliver_due()
        clock.advance(timedelta(minutes=1))
    dead = {n.receiver: n for n in store.notifications("dead")}
    assert set(dead) == {"down", "bad", "unknown"}
    assert dead["down"].attempts == 3 and dead["bad"].attempts == 1
    assert "not configured" in (dead["unknown"].last_error or "")


def test_a_worker_leaves_a_receiver_it_lacks_to_a_worker_that_has_it(store: Store) -> None:
    """Two workers on one store during a config roll-out: the old one has no `pagerduty`
    receiver yet. Before, it dead-lettered every PagerDuty notification it claimed first
    ("not configured") though the new worker could send it: pages were lost."""
    clock = FakeClock(T0)
    old_slack, new_slack, pagerduty = Flaky(), Flaky(), Flaky()
    old = OutboxWorker(store, {"slack": old_slack}, clock, owner="old")
    new = OutboxWorker(store, {"slack": new_slack, "pagerduty": pagerduty}, clock, owner="new")
    enqueue(store, ("i1", "pagerduty", 1), ("i1", "slack", 2), ("i2", "retired", 3))
    report = old.deliver_due()  # the old worker polls first
    assert (report.sent, report.dead) == (1, 0) and old_slack.received == [{"n": 2}]
    assert new.deliver_due().sent == 1 and pagerduty.received == [{"n": 1}]
    # a receiver no worker has (removed from the config) is dead-lettered, visibly, once no
    # worker took it for `orphan_after`: never pending forever
    assert store.outbox_counts()["pending"] == 1
    clock.advance(DeliveryPolicy().orphan_after - timedelta(seconds=1))
    assert old.deliver_due().dead == 0
    clock.advance(timedelta(seconds=1))
    assert old.deliver_due().dead == 1
    [dead] = store.notifications("dead")
    assert dead.receiver == "retired"
    assert dead.last_error == ("receiver 'retired' is not configured in any worker that polled "
                               "the outbox for 10m")


def test_order_per_incident_is_kept_when_a_send_fails(store: Store) -> None:
    clock = FakeClock(T0)
    slack = Flaky(failures=1)
    worker = OutboxWorker(store, {"slack": slack}, clock,
                          DeliveryPolicy(base_delay=timedelta(seconds=1)))
    enqueue(store, ("i1", "slack", 1), ("i1", "slack", 2), ("i2", "slack", 1))
    report = worker.deliver_due()
    # i1's first failed, so i1's second must wait; the other incident goes through
    assert report.sent == 1 and slack.received == [{"n": 1}]
    clock.advance(timedelta(seconds=1))
    worker.deliver_due()
    assert slack.received == [{"n": 1}, {"n": 1}, {"n": 2}]


def test_a_crash_between_send_and_mark_resends_once_more(store: Store) -> None:
    """At-least-once: an unmarked send is repeated after restart, never lost."""
    clock = FakeClock(T0)
    enqueue(store, ("i1", "slack", 1))

    class Crash(Notifier):
        def send(self, payload: Mapping[str, Any]) -> None:
            raise SystemExit("kill -9")  # the process dies after the message left

    with pytest.raises(SystemExit):
        OutboxWorker(store, {"slack": Crash()}, clock).deliver_due()
    slack = Flaky()
    restarted = OutboxWorker(store, {"slack": slack}, clock)
    restarted.deliver_due()
    assert slack.received == []  # the dead worker's lease still holds the row ...
    clock.advance(DeliveryPolicy().lease)
    restarted.deliver_due()
    assert slack.received == [{"n": 1}]  # ... until it expires
    assert store.outbox_counts()["sent"] == 1


def test_an_update_never_overtakes_the_message_waiting_for_its_retry(store: Store) -> None:
    """The incident's first message failed and waits for its retry; the update enqueued after
    it is due now but must wait too. Another receiver of the same incident is not held back."""
    clock = FakeClock(T0)
    slack, pager = Flaky(failures=1), Flaky()
    worker = OutboxWorker(store, {"slack": slack, "pager": pager}, clock,
                          DeliveryPolicy(base_delay=timedelta(seconds=30)))
    enqueue(store, ("i1", "slack", 1))
    worker.deliver_due()  # fails: retry in 30 s
    with store.transaction() as tx:
        tx.enqueue([Notification("i1-2", "slack", "i1", {"n": 2}),
                    Notification("i1-pager", "pager", "i1", {"n": 2})], T0)
    clock.advance(timedelta(seconds=10))
    assert worker.deliver_due().sent == 1  # only the other receiver's
    assert slack.received == [] and pager.received == [{"n": 2}]
    clock.advance(timedelta(seconds=20))
    assert worker.deliver_due().sent == 2
    assert slack.received == [{"n": 1}, {"n": 2}]


@pytest.mark.parametrize("hint", [1e12, float("inf"), float("nan")])
def test_an_absurd_retry_after_is_capped_and_the_attempt_counted(store: Store,
                                                                  hint: float) -> None:
    """A 429 with ``Retry-After: 1e12`` overflowed the retry time: the worker crashed before
    counting the attempt, and every later pass re-sent the notification."""
    clock = FakeClock(T0)
    worker = OutboxWorker(store, {"slack": Flaky(failures=99, retry_after=hint)}, clock,
                          DeliveryPolicy(max_attempts=2))
    enqueue(store, ("i1", "slack", 1))
    assert worker.deliver_due().retried == 1
    row = store.notifications("pending")[0]
    assert row.attempts == 1
    assert row.next_attempt_at <= T0 + DeliveryPolicy().max_retry_after
    clock.advance(DeliveryPolicy().max_retry_after)
    assert worker.deliver_due().dead == 1


def test_a_requeued_dead_letter_is_sent_once_the_receiver_is_back(store: Store) -> None:
    """A receiver down past the retry budget: `alerts retry` puts the notification back,
    due now with a fresh budget, and the worker sends it; a sent one is left alone."""
    clock = FakeClock(T0)
    hook = Flaky(failures=2)
    worker = OutboxWorker(store, {"hook": hook, "other": Flaky()}, clock,
                          DeliveryPolicy(max_attempts=2, base_delay=timedelta(seconds=1)))
    enqueue(store, ("i1", "hook", 1), ("i2", "other", 1))
    worker.deliver_due()
    clock.advance(timedelta(seconds=1))
    assert worker.deliver_due().dead == 1
    dead = store.notifications("dead")[0]
    sent = store.notifications("sent")[0]
    clock.advance(timedelta(hours=1))
    assert store.requeue_dead([dead.id, sent.id], clock.now()) == [dead.id]
    again = store.notifications("pending")[0]
    assert (again.attempts, again.next_attempt_at) == (0, clock.now())
    assert again.last_error == dead.last_error  # still says why it died, until retried
    assert worker.deliver_due().sent == 1
    assert hook.received == [{"n": 1}]
    assert store.outbox_counts()["dead"] == 0


def test_requeue_dead_all_of_one_receiver(store: Store) -> None:
    clock = FakeClock(T0)
    worker = OutboxWorker(store, {"a": Flaky(9, retryable=False),
                                  "b": Flaky(9, retryable=False)}, clock)
    enqueue(store, ("i1", "a", 1), ("i2", "b", 1), ("i3", "a", 1))
    assert worker.deliver_due().dead == 3
    done = store.requeue_dead(None, clock.now(), receiver="a")
    assert [r.receiver for r in store.notifications("pending")] == ["a", "a"]
    assert done == [r.id for r in store.notifications("pending")]
    assert store.requeue_dead(None, clock.now(), receiver="a") == []


def test_a_rate_limited_receiver_is_held_until_its_retry_after(store: Store) -> None:
    """A 429 with Retry-After 60 s holds the whole receiver for 60 s: passes every 5 s used
    to try one more of its queued rows each (one attempt each), so a long rate limit
    dead-lettered a queue that a single wait would have delivered."""
    clock = FakeClock(T0)
    limited = Flaky(failures=1, retry_after=60, unreachable=True)
    worker = OutboxWorker(store, {"slack": limited}, clock,
                          DeliveryPolicy(base_delay=timedelta(seconds=5)))
    enqueue(store, ("i1", "slack", 1), ("i2", "slack", 1), ("i3", "slack", 1))
    report = worker.deliver_due()
    assert (report.retried, report.deferred, report.sent) == (1, 2, 0)
    for _ in range(11):  # passes during the wait: nothing tried, no attempt spent
        clock.advance(timedelta(seconds=5))
        report = worker.deliver_due()
        assert (report.retried, report.sent, report.deferred) == (0, 0, 2)  # i1 is not due
    assert {n.attempts for n in store.notifications("pending")} == {0, 1}
    clock.advance(timedelta(seconds=5))  # 60 s later: all go
    assert worker.deliver_due().sent == 3


def test_an_unreachable_receiver_costs_one_attempt_per_pass_not_one_per_incident(
        store: Store) -> None:
    """Found by the chaos review: a pass holds the scheduler's lock, so a receiver that
    hangs for its timeout on each of 30 queued incidents held every tick for 30 timeouts.
    Once it is unreachable (timeout, connection error, 429) its other notifications wait for
    the next pass, unattempted; other receivers are not held back. (A failure about one
    payload holds nothing back: test_order_per_incident_is_kept_when_a_send_fails.)"""
    clock = FakeClock(T0)
    down, ok = Flaky(failures=99, unreachable=True), Flaky()
    worker = OutboxWorker(store, {"down": down, "ok": ok}, clock,
                          DeliveryPolicy(base_delay=timedelta(seconds=30)))
    enqueue(store, ("i1", "down", 1), ("i2", "down", 1), ("i3", "ok", 1), ("i4", "down", 1))
    report = worker.deliver_due()
    assert (report.retried, report.deferred, report.sent) == (1, 2, 1)
    assert down.failures == 98  # one send tried, not three
    assert ok.received == [{"n": 1}]
    pending = {n.incident_key: n for n in store.notifications("pending")}
    assert pending["i1"].attempts == 1
    assert pending["i2"].attempts == 0 and pending["i4"].attempts == 0  # not counted
    clock.advance(timedelta(seconds=5))  # the next pass: the deferred ones are due at once
    report = worker.deliver_due()
    assert (report.retried, report.deferred) == (1, 1)
    down.failures = 0
    clock.advance(timedelta(minutes=2))
    assert worker.deliver_due().sent == 3
    assert store.outbox_counts()["pending"] == 0
