"""Several delivery workers on one store (SQLite and the real PostgreSQL): leases make every
notification go out once, in order per incident, and a crashed worker's rows come back."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.notifiers.base import Notifier
from alerts.outbox import DeliveryPolicy, OutboxWorker, local_owner_dead, worker_id
from monitor.clock import FakeClock
from monitor.model import Notification
from monitor.store import Store

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)


class Recorder(Notifier):
    """Records (worker, idempotency key); ``during`` runs inside the first send."""

    def __init__(self, log: list[tuple[str, str]], name: str,
                 during: Callable[[], None] | None = None) -> None:
        self.log, self.name, self.during = log, name, during
        self.lock = threading.Lock()

    def send(self, payload: Mapping[str, Any]) -> None:  # pragma: no cover - deliver is used
        raise AssertionError("deliver() is the outbox's entry point")

    def deliver(self, payload: Mapping[str, Any], key: str) -> None:
        with self.lock:
            self.log.append((self.name, key))
        if self.during is not None:
            during, self.during = self.during, None
            during()


def enqueue(store: Store, incidents: int, steps: int) -> list[str]:
    keys = [f"i{i}|{s}" for s in range(steps) for i in range(incidents)]
    with store.transaction() as tx:
        tx.enqueue([Notification(k, "slack", k.split("|")[0], {"k": k}) for k in keys], T0)
    return keys


def test_a_second_worker_never_takes_rows_the_first_one_is_sending(store_url: str) -> None:
    """Worker B runs a whole pass while worker A is in the middle of its first send: B must
    skip A's claimed rows (without the lease both would send them)."""
    clock = FakeClock(T0)
    sent: list[tuple[str, str]] = []
    with Store.open(store_url) as sa, Store(store_url) as sb:
        keys = enqueue(sa, incidents=4, steps=2)
        b = OutboxWorker(sb, {"slack": Recorder(sent, "B")}, clock, owner="host-b:1:b")
        a = OutboxWorker(sa, {"slack": Recorder(sent, "A", during=b.deliver_due)}, clock,
                         owner="host-a:1:a")
        a.deliver_due(limit=2)
        assert Counter(k for _, k in sent) == Counter(keys)  # all sent, each once
        assert {w for w, _ in sent} == {"A", "B"}  # both did work
        for i in range(4):  # per incident: the open before the update
            mine = [k for _, k in sent if k.startswith(f"i{i}|")]
            assert mine == [f"i{i}|0", f"i{i}|1"]
        assert sa.outbox_counts()["sent"] == len(keys)


def test_two_worker_threads_send_every_notification_once_in_order(store_url: str) -> None:
    clock = FakeClock(T0)
    sent: list[tuple[str, str]] = []
    stores = [Store.open(store_url), Store(store_url)]
    try:
        keys = enqueue(stores[0], incidents=15, steps=4)
        workers = [OutboxWorker(s, {"slack": Recorder(sent, name)}, clock,
                                owner=f"host-{name}:1:{name}")
                   for s, name in zip(stores, "AB", strict=True)]
        errors: list[BaseException] = []

        def run(w: OutboxWorker) -> None:
            try:
                for _ in range(20):
                    w.deliver_due(limit=3)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors
        assert Counter(k for _, k in sent) == Counter(keys)
        for i in range(15):
            assert [k for _, k in sent if k.startswith(f"i{i}|")] == [
                f"i{i}|{s}" for s in range(4)]
        counts = stores[0].outbox_counts()
        assert counts["sent"] == len(keys) and counts["pending"] == 0
    finally:
        for s in stores:
            s.close()


def test_a_crashed_workers_rows_come_back_when_its_lease_expires(store_url: str) -> None:
    clock = FakeClock(T0)
    policy = DeliveryPolicy(lease=timedelta(minutes=2))
    with Store.open(store_url) as store:
        enqueue(store, incidents=2, steps=1)
        claimed = store.claim_due(T0, lease=policy.lease, owner="elsewhere:4242:dead")
        assert len(claimed) == 2  # then that worker, on another host, died
        sent: list[tuple[str, str]] = []
        worker = OutboxWorker(store, {"slack": Recorder(sent, "B")}, clock, policy)
        assert worker.deliver_due().sent == 0  # not while its lease holds
        clock.advance(policy.lease)
        assert worker.deliver_due().sent == 2
        assert sorted(k for _, k in sent) == ["i0|0", "i1|0"]


def test_a_late_worker_cannot_settle_a_row_it_lost(sqlite_url: str) -> None:
    """A row whose lease expired mid-send belongs to the new claimant; the old worker's
    mark_sent is refused (counted as lost), so the row is settled exactly once."""
    clock = FakeClock(T0)
    with Store.open(sqlite_url) as store:
        enqueue(store, incidents=1, steps=1)
        sent: list[tuple[str, str]] = []
        policy = DeliveryPolicy(lease=timedelta(minutes=2))

        def steal() -> None:
            clock.advance(timedelta(minutes=3))  # the send outlived the lease
            assert OutboxWorker(store, {"slack": Recorder(sent, "B")}, clock, policy,
                                owner="h:2:b").deliver_due().sent == 1

        slow = OutboxWorker(store, {"slack": Recorder(sent, "A", during=steal)}, clock, policy,
                            owner="h:1:a")
        report = slow.deliver_due()
        assert (report.sent, report.lost) == (1, 1)
        assert [w for w, _ in sent] == ["A", "B"]  # at-least-once: the key deduplicates
        row = store.notifications()[0]
        assert row.status == "sent" and row.lease_owner is None


def test_local_owner_dead_only_for_gone_processes_of_this_host() -> None:
    me = worker_id()
    host = me.rsplit(":", 2)[0]
    assert not local_owner_dead(me)  # this process
    assert local_owner_dead(f"{host}:999999999:x")  # no such pid
    assert not local_owner_dead("other-host:999999999:x")  # cannot tell: wait for the lease
    assert not local_owner_dead("garbage")
