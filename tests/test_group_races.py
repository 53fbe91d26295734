"""Lost updates on ``alert_groups`` between the writers that read-modify-write its rows: a
tick's commit (:meth:`AlertGroups.apply`), the delivery thread's flush (:meth:`AlertGroups.
flush`) and a "not an anomaly" dismissal (:mod:`alerts.dismiss`, from the feedback server or
the CLI, another process). On PostgreSQL at READ COMMITTED each read a row, then wrote back
what it had read plus its change: the second writer overwrote the first's change.

Each test runs two transactions in two threads and interleaves them at a chosen statement
with events (a hook on the connection's statements), never with a sleep: the first stops
right after reading its rows, holding its transaction open until the second has committed
or waits for the first's row lock (the fix; on SQLite, for its write transaction), and only
then goes on. Each runs on both backends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from alerts.dismiss import dismiss_false_alarms, dismissals
from alerts.grouping import AlertGroups
from alerts.payload import incident_payload
from monitor.incidents import IncidentChange, IncidentTracker, OpenIncident
from monitor.store import Store, alert_groups_t
from tests.test_grouping import T0, Harness, M, incident, step

WAIT = 30.0  # seconds; only a broken test waits this long


def _store_incident(store: Store, key: str, journey: str) -> list[str]:
    """The incident's row and one anomaly of it, marked ``not_anomaly``: what a dismissal
    reads. The anomaly ids."""
    with store.engine.begin() as conn:
        sid = conn.execute(sa.text(
            "insert into series (key, metric, labels, created_at) values ('s', 'm', '{}', :t) "
            "returning id"), {"t": T0}).scalar()
        iid = conn.execute(sa.text(
            "insert into incidents (key, journey, status, severity, opened_at, updated_at, "
            "summary) values (:k, :j, 'open', 60, :t, :t, '{}') returning id"),
            {"k": key, "j": journey, "t": T0}).scalar()
        conn.execute(sa.text(
            "insert into anomalies (id, series_id, ts, metric, detector, kind, severity, "
            "direction, labels, incident_id, created_at) values ('a1', :s, :t, 'm', 'd', "
            "'point', 60, 'up', '{}', :i, :t)"), {"s": sid, "t": T0, "i": iid})
    store.add_feedback("a1", "not_anomaly", source="cli")
    return ["a1"]


def _row(store: Store, key: str) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(alert_groups_t)
                            .where(alert_groups_t.c.incident_key == key)).one()


def _waiting_for_lock(store: Store, pid: int) -> bool:
    with store.engine.connect() as conn:
        return bool(conn.execute(sa.text(
            "select wait_event_type = 'Lock' from pg_stat_activity where pid = :p"),
            {"p": pid}).scalar())


class Racer:
    """``fn`` in a thread of its own; its backend pid is kept (to see it queued on a row
    lock), and with ``pause=True`` it stops right after its first read of ``alert_groups``
    until :meth:`resume`."""

    def __init__(self, store: Store, fn: Callable[[], object], *, pause: bool = False) -> None:
        self.store, self.fn, self.pause = store, fn, pause
        self.read, self.go = threading.Event(), threading.Event()
        self.pid: int | None = None
        self.beginning = False  # SQLite: inside BEGIN IMMEDIATE (queued behind a writer)
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)

    def _after(self, _conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        if threading.get_ident() != self.thread.ident:
            return
        self.beginning = False
        if self.read.is_set():
            return
        if statement.lstrip().upper().startswith("SELECT") and "alert_groups" in statement:
            self.read.set()
            if self.pause:
                assert self.go.wait(WAIT)

    def _before(self, conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        if threading.get_ident() != self.thread.ident:
            return
        self.beginning = statement.startswith("BEGIN IMMEDIATE")
        if self.pid is None and conn.dialect.name == "postgresql":
            self.pid = conn.connection.dbapi_connection.info.backend_pid

    def _run(self) -> None:
        try:
            self.fn()
        except BaseException as exc:  # the test reports it
            self.errors.append(exc)

    @contextmanager
    def hooked(self) -> Iterator[Racer]:
        """The statement hooks on the store's engine (added before any thread runs: the
        engine's listener list must not change while another thread walks it)."""
        engine = self.store.engine
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)
        try:
            yield self
        finally:
            sa.event.remove(engine, "before_cursor_execute", self._before)
            sa.event.remove(engine, "after_cursor_execute", self._after)

    def done_or_waiting_for_a_lock(self) -> bool:
        if not self.thread.is_alive() or self.beginning:
            return True  # SQLite: BEGIN IMMEDIATE waits for the other's commit
        if self.pid is None:
            return False
        with self.store.engine.connect() as conn:
            return bool(conn.execute(sa.text(
                "select wait_event_type = 'Lock' from pg_stat_activity where pid = :p"),
                {"p": self.pid}).scalar())


def interleave(store: Store, reader: Callable[[], object],
               writer: Callable[[], object]) -> None:
    """``reader`` reads its ``alert_groups`` rows and stops; ``writer`` runs until it has
    committed, or waits for a row lock ``reader`` holds; then ``reader`` goes on."""
    with Racer(store, reader, pause=True).hooked() as first, \
            Racer(store, writer).hooked() as second:
        first.thread.start()
        assert first.read.wait(WAIT), first.errors
        second.thread.start()
        for _ in range(int(WAIT * 200)):
            if second.done_or_waiting_for_a_lock():
                break
            first.go.wait(0.005)  # polls a condition: the order does not depend on the time
        first.go.set()
        for r in (first, second):
            r.thread.join(WAIT)
    for r in (first, second):
        assert not r.thread.is_alive() and not r.errors, r.errors


def _apply(groups: AlertGroups, change: IncidentChange, store: Store,
           now: datetime) -> None:
    """A tick's commit step: the incident change into the groups, in one transaction."""
    with store.transaction() as tx:
        groups.apply(tx, [change], {id(change): incident_payload(change)}, now)


def _kinds(store: Store) -> list[str]:
    return [n.idempotency_key.split("|")[1] for n in store.notifications()]


def test_a_flush_during_a_dismissal_never_leaves_a_page_without_its_resolution(
        store) -> None:
    """The dismissal read the group as never told; the delivery thread's flush then sent
    the first message (the page) and committed; the dismissal closed the group with no
    resolution (nobody told, it thought), over what the flush told: the page stayed open for
    good. Now the dismissal holds the row, the flush skips it, and nothing is sent."""
    h = Harness(store)
    inc = incident("checkout", "app")
    h.change([step(inc, "opened", T0, "a")], T0)  # waits group_wait (30 s)
    ids = _store_incident(store, inc.key, "checkout")
    now = T0 + M
    interleave(store, lambda: dismiss_false_alarms(store, ids, by="bo", now=now),
               lambda: h.flush(now))
    h.flush(now + 2 * 60 * M)  # past group_interval and repeat_interval
    assert _kinds(store) == []
    assert "dismissed" in _row(store, inc.key).told


def test_a_tick_commit_read_before_a_dismissal_does_not_page_again(store) -> None:
    """The tick's commit read the group, the dismissal closed it and committed, the commit
    wrote its merged update back: the group kept the dismissal in ``told`` but got a pending
    update and a flush time, and the next flush paged the incident just called a false
    alarm. Now the dismissal waits for the commit and closes the group after it."""
    h = Harness(store)
    inc = incident("checkout", "app")
    h.change([step(inc, "opened", T0, "a")], T0)
    h.flush(T0 + M)  # the page went out
    ids = _store_incident(store, inc.key, "checkout")
    now = T0 + 2 * M
    change = step(inc, "updated", now, "b")
    interleave(store, lambda: _apply(h.groups, change, store, now),
               lambda: dismiss_false_alarms(store, ids, by="bo", now=now))
    row = _row(store, inc.key)
    assert "dismissed" in row.told and row.pending is None and row.next_flush_at is None
    h.flush(now + 2 * 60 * M)
    assert _kinds(store) == ["opened", "dismissed"]


def test_a_resolution_read_before_a_dismissal_is_not_sent_twice(store) -> None:
    """The tick's commit read the group to queue the incident's resolution, the dismissal
    sent its own resolution and committed, the commit queued the resolution again: two
    resolutions. Now the dismissal waits and finds the resolution queued: one goes out."""
    h = Harness(store)
    inc = incident("checkout", "app")
    h.change([step(inc, "opened", T0, "a")], T0)
    h.flush(T0 + M)
    ids = _store_incident(store, inc.key, "checkout")
    now = T0 + 10 * M
    change = IncidentChange(inc, "resolved", (), True, now)
    interleave(store, lambda: _apply(h.groups, change, store, now),
               lambda: dismiss_false_alarms(store, ids, by="bo", now=now))
    h.flush(now + 2 * 60 * M)
    assert sorted(_kinds(store)) in (["dismissed", "opened"], ["opened", "resolved"])


def _commit(tracker: IncidentTracker, inc: OpenIncident, store: Store, now: datetime) -> None:
    """A tick's commit step storing an update of ``inc`` (``Pipeline``: the dismissals
    learned first, then the incident kept closed or upserted open)."""
    with store.transaction() as tx:
        for key, dismissal in dismissals(tx, [inc.key]).items():
            tracker.dismiss(key, dismissal)
        if inc.dismissed is None:
            tx.open_incident(inc.key, journey="checkout", severity=inc.severity, at=now,
                             summary={"group": inc.group})
        else:
            tx.absorb_into_closed(inc.key, severity=inc.severity, at=now,
                                  summary={"group": inc.group, "dismissed": inc.dismissed})


def test_a_tick_commit_during_a_dismissal_does_not_reopen_the_incident(store) -> None:
    """The dismissal closed the incident; a tick's commit that had read it as open before
    the dismissal committed upserted it open again (the store said a false alarm was a live
    incident, and the monitor did not know it was dismissed). Now the commit reads the
    incident's row with a lock: it waits for the dismissal, sees it closed, keeps it so."""
    h = Harness(store)
    inc = incident("checkout", "app")
    h.change([step(inc, "opened", T0, "a")], T0)
    h.flush(T0 + M)
    ids = _store_incident(store, inc.key, "checkout")
    tracker = IncidentTracker(["journey", "channel"])
    tracker.open["channel=app,journey=checkout"] = inc
    now = T0 + 2 * M
    interleave(store, lambda: dismiss_false_alarms(store, ids, by="bo", now=now),
               lambda: _commit(tracker, inc, store, now))
    (row,) = store.incidents()
    assert row["status"] == "resolved" and row["summary"]["dismissed"]["by"] == "bo"
    assert inc.dismissed is not None and tracker.active() == []
