"""group_wait, group_interval and repeat_interval on incident notifications (Alertmanager's
aggregation-group timing), durable across restarts, with suppression decided at flush time and
stored in the outbox. Every test drives a fake clock; nothing sleeps."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.dispatch import Dispatcher
from alerts.grouping import AlertGroups, merge_payloads, waiting_groups
from alerts.payload import incident_payload
from alerts.silences import active_silences, add_silence
from monitor.config import parse_config
from monitor.incidents import IncidentChange, OpenIncident
from monitor.model import Anomaly, Direction
from monitor.store import Store

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday
S, M, H = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)

CONFIG = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics: [{name: m, source: s, value: v}]
alerting:
  receivers: [{name: ops}, {name: pager}]
  time_intervals:
    - name: weekend
      time_intervals: [{weekdays: [saturday, sunday]}]
  inhibit_rules:
    - {source_matchers: ['channel=""'], target_matchers: ['channel=~".+"'], equal: [journey]}
  route:
    receiver: ops
    group_by: [journey, channel]
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    routes:
      - {receiver: pager, matchers: ['journey="payments"'], group_wait: 0s,
         mute_time_intervals: [weekend]}
"""


class Harness:
    """AlertGroups over a store, as the pipeline uses them (fresh objects = a restart)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.restart()

    def restart(self) -> None:
        cfg = parse_config(CONFIG, env={})
        self.dispatcher = Dispatcher(cfg.alerting,
                                     silences=lambda now: active_silences(self.store, now))
        self.groups = AlertGroups(self.dispatcher, {"ops", "pager"})

    def change(self, changes: Sequence[IncidentChange], now: datetime) -> None:
        payloads = {id(c): incident_payload(c) for c in changes if c.notify}
        with self.store.transaction() as tx:
            self.groups.apply(tx, changes, payloads, now)
            self.groups.flush(tx, now)

    def flush(self, now: datetime, open_incidents: Sequence[OpenIncident] = (), *,
              group_wait: bool = False) -> None:
        with self.store.transaction() as tx:
            self.groups.flush(tx, now, open_incidents, group_wait=group_wait)

    def sent(self, receiver: str = "ops") -> list[dict[str, Any]]:
        return [dict(n.payload) for n in self.store.notifications()
                if n.receiver == receiver and n.status == "pending"]


def anomaly(journey: str, channel: str | None, at: datetime, severity: int = 60) -> Anomaly:
    labels = {"journey": journey, **({"channel": channel} if channel else {})}
    return Anomaly(f"m{sorted(labels.items())}", "m", labels, at, 1.0, 0.5, 0.4, 0.6, 0.999,
                   severity, Direction.UP, "d")


def incident(journey: str, channel: str | None = None) -> OpenIncident:
    group = {"journey": journey, **({"channel": channel} if channel else {})}
    return OpenIncident(key=f"{journey}/{channel}@T0", group=group, opened_at=T0,
                        last_anomaly_at=T0, severity=60)


def step(inc: OpenIncident, status: str, at: datetime, *series: str) -> IncidentChange:
    items = tuple(anomaly(inc.group["journey"], inc.group.get("channel"), at, 60 + i)
                  for i, _ in enumerate(series))
    items = tuple(Anomaly(f"{a.series}{s}", a.metric, a.labels, a.timestamp, a.value,
                          a.expected, a.lower, a.upper, a.score, a.severity, a.direction,
                          a.detector) for a, s in zip(items, series, strict=True))
    return IncidentChange(inc, status, items if status != "resolved" else (), True, at)


@pytest.fixture
def h(store: Store) -> Harness:
    return Harness(store)


def test_group_wait_batches_what_arrives_within_it(h: Harness) -> None:
    inc = incident("checkout", "app")
    h.change([step(inc, "opened", T0, "a")], T0)
    assert h.sent() == []  # waits group_wait
    h.change([step(inc, "updated", T0 + 10 * S, "b")], T0 + 10 * S)
    h.flush(T0 + 29 * S)
    assert h.sent() == []
    h.flush(T0 + 30 * S)
    (first,) = h.sent()
    assert first["update"] is False  # one opening message ...
    assert {a["series"] for a in first["anomalies"]} == {
        "m[('channel', 'app'), ('journey', 'checkout')]a",
        "m[('channel', 'app'), ('journey', 'checkout')]b"}  # ... with both changes
    assert first["anomalies_total"] == 2


def test_group_interval_paces_later_changes_and_merges_them(h: Harness) -> None:
    inc = incident("checkout", "app")
    h.change([step(inc, "opened", T0, "a")], T0)
    h.flush(T0 + 30 * S)  # first flush; the next ticks are 05:30, 10:30, ...
    h.change([step(inc, "updated", T0 + M, "b")], T0 + M)
    h.change([step(inc, "updated", T0 + 2 * M, "c")], T0 + 2 * M)
    h.flush(T0 + 5 * M + 29 * S)
    assert len(h.sent()) == 1  # nothing before group_interval has passed
    h.flush(T0 + 5 * M + 30 * S)
    _opened, update = h.sent()
    assert update["update"] is True
    assert {a["series"][-1] for a in update["anomalies"]} == {"b", "c"}  # one merged update
    h.change([step(inc, "updated", T0 + 12 * M, "d")], T0 + 12 * M)
    h.flush(T0 + 15 * M)
    assert len(h.sent()) == 2
    h.flush(T0 + 15 * M + 30 * S)  # on the group's tick, not 5 minutes after the change
    assert [p["anomalies"][0]["series"][-1] for p in h.sent()[2:]] == ["d"]


def test_group_wait_flush_sends_first_messages_now_and_keeps_group_interval(
        h: Harness, store: Store) -> None:
    """``cxmon run --once``: a new incident's first message goes out before the process
    exits; an update still waits for group_interval, which counts from that early flush."""
    old, new = incident("checkout", "app"), incident("checkout", "web")
    h.change([step(old, "opened", T0, "a")], T0)
    h.flush(T0 + 30 * S)  # told; next group_interval ticks at 05:30, 10:30, ...
    h.change([step(old, "updated", T0 + M, "b")], T0 + M)
    h.change([step(new, "opened", T0 + M, "x")], T0 + M)
    assert [(w.incident_key, w.kind, w.first, w.due) for w in waiting_groups(store)] == [
        (new.key, "opened", True, T0 + M + 30 * S),
        (old.key, "updated", False, T0 + 5 * M + 30 * S)]
    h.flush(T0 + M, group_wait=True)
    sent = h.sent()
    assert [p["incident_key"] for p in sent] == [old.key, new.key]  # not old's update
    assert [w.incident_key for w in waiting_groups(store)] == [old.key]
    h.change([step(new, "updated", T0 + 2 * M, "y")], T0 + 2 * M)
    h.flush(T0 + 5 * M, group_wait=True)
    assert len(h.sent()) == 2  # new's update: group_interval from 01:00, due 06:00
    h.flush(T0 + 6 * M)
    assert {p["incident_key"] for p in h.sent()[2:]} == {old.key, new.key}


def test_repeat_interval_reminds_of_an_unchanged_firing_group(h: Harness) -> None:
    inc = incident("checkout", "app")
    h.change([step(inc, "opened", T0, "a")], T0)
    h.flush(T0 + 30 * S)
    h.flush(T0 + H + 29 * S)
    assert len(h.sent()) == 1
    h.flush(T0 + H + 30 * S)  # the first tick at least repeat_interval after the last send
    first, reminder = h.sent()
    assert reminder["repeat"] is True and reminder["update"] is True
    assert reminder["anomalies"] == first["anomalies"]
    h.flush(T0 + 2 * H)
    assert len(h.sent()) == 2
    h.flush(T0 + 2 * H + 30 * S)
    assert len(h.sent()) == 3


def test_a_restart_neither_loses_a_waiting_group_nor_sends_early(h: Harness) -> None:
    inc = incident("checkout", "app")
    h.change([step(inc, "opened", T0, "a")], T0)
    h.restart()  # kill -9 during group_wait: new process, same store
    h.flush(T0 + 20 * S)
    assert h.sent() == []
    h.flush(T0 + 30 * S)
    assert len(h.sent()) == 1
    h.change([step(inc, "updated", T0 + M, "b")], T0 + M)
    h.restart()
    h.flush(T0 + 3 * M)
    assert len(h.sent()) == 1  # group_interval survives the restart too
    h.flush(T0 + 5 * M + 30 * S)
    assert len(h.sent()) == 2


def test_resolution_closes_told_groups_and_tells_one_resolved_before_its_first_flush(
        h: Harness) -> None:
    """An incident opened and resolved within group_wait (a catch-up tick after downtime
    finds it over) is told once, at its flush, resolved and marked late, with its anomalies;
    Alertmanager would drop it, and a detected incident would go unreported."""
    quick, told = incident("search", "web"), incident("checkout", "app")
    h.change([step(quick, "opened", T0, "a"), step(told, "opened", T0, "a")], T0)
    h.flush(T0 + 30 * S)
    late = incident("returns", "web")
    h.change([step(late, "opened", T0 + M, "a")], T0 + M)
    h.change([step(late, "resolved", T0 + M + 10 * S)], T0 + M + 10 * S)  # within group_wait
    h.flush(T0 + M + 20 * S)
    assert all(p["incident_key"] != late.key for p in h.sent())  # group_wait still applies
    h.change([step(told, "resolved", T0 + 2 * M)], T0 + 2 * M)
    h.flush(T0 + 5 * M + 30 * S)
    keys = [(p["incident_key"], p["status"], p.get("late", False)) for p in h.sent()]
    assert sorted(keys) == sorted([(quick.key, "firing", False), (told.key, "firing", False),
                                   (told.key, "resolved", False), (late.key, "resolved", True)])
    [told_late] = [p for p in h.sent() if p.get("late")]
    assert told_late["anomalies"] and told_late["title"].endswith(", already resolved")
    assert told_late["resolved_at"] is not None
    h.flush(T0 + 10 * M)
    assert len(h.sent()) == 4  # told once: the group is closed


def test_a_route_with_group_wait_0s_sends_with_the_change(h: Harness) -> None:
    inc = incident("payments")
    h.change([step(inc, "opened", T0, "a")], T0)
    assert len(h.sent("pager")) == 1 and h.sent("ops") == []


def test_suppressed_notifications_are_stored_with_the_reason(h: Harness, store: Store) -> None:
    # a silence created during group_wait still applies: suppression is decided at flush time
    silenced = incident("checkout", "app")
    h.change([step(silenced, "opened", T0, "a")], T0)
    s = add_silence(store, ['journey="checkout"'], now=T0 + 10 * S, duration=H)
    # inhibited: the journey-level incident of delivery is open
    parent, child = incident("delivery"), incident("delivery", "app")
    h.change([step(parent, "opened", T0, "a"), step(child, "opened", T0, "a")], T0)
    h.flush(T0 + 30 * S, [parent, child])
    assert {n.incident_key for n in store.notifications() if n.status == "pending"} == {
        parent.key}
    # muted: the pager route's weekend mute interval (Saturday)
    saturday = T0 + timedelta(days=5)
    h.change([step(incident("payments", "web"), "opened", saturday, "a")], saturday)
    rows = [n for n in store.notifications() if n.status == "suppressed"]
    reasons = {(n.incident_key, n.receiver): n.reason for n in rows}
    assert reasons == {
        (silenced.key, "ops"): f"silenced by {s.id}",
        (child.key, "ops"): f"inhibited by {parent.key}",
        ("payments/web@T0", "pager"): "mute time interval weekend (route.routes[0])",
    }
    # by Saturday the parent was reminded (repeat_interval), and the checkout incident,
    # still open when its silence ended, was told; the child is still inhibited
    assert {n.incident_key for n in store.notifications() if n.status == "pending"} == {
        parent.key, silenced.key}
    assert store.outbox_counts()["suppressed"] == 3  # one row per muted group, not per flush


def test_a_silenced_incident_resolved_before_its_flush_stays_silent(h: Harness,
                                                                     store: Store) -> None:
    """Telling a late incident once must not get around a silence: it is checked at the
    flush, as for a firing message, and the message is kept as suppressed."""
    quiet = incident("checkout", "app")
    h.change([step(quiet, "opened", T0, "a")], T0)
    s = add_silence(store, ['journey="checkout"'], now=T0 + 5 * S, duration=H)
    h.change([step(quiet, "resolved", T0 + 10 * S)], T0 + 10 * S)
    h.flush(T0 + M)
    assert h.sent() == []
    [muted] = [n for n in store.notifications() if n.status == "suppressed"]
    assert muted.incident_key == quiet.key and muted.reason == f"silenced by {s.id}"
    assert muted.payload["late"] is True


def test_merge_keeps_the_first_message_flag_and_counts_anomalies_once() -> None:
    a = {"id": "a", "severity": 40, "series": "s1"}
    b = {"id": "b", "severity": 90, "series": "s2"}
    merged = merge_payloads({"update": False, "anomalies": [a], "anomalies_total": 1},
                            {"update": True, "anomalies": [a, b], "anomalies_total": 2,
                             "severity": 90})
    assert merged["update"] is False and merged["severity"] == 90
    assert [x["id"] for x in merged["anomalies"]] == ["b", "a"]
    assert merged["anomalies_total"] == 2


def test_an_incident_muted_at_its_flush_is_told_once_the_mute_ends(h: Harness,
                                                                    store: Store) -> None:
    """An incident opened inside a silence (or a maintenance window) and still firing when
    it ended was never told: its group had nothing left to flush. Alertmanager sends it at
    the next group_interval tick; so does cxmon, and the outbox keeps one suppressed row."""
    inc = incident("checkout", "app")
    s = add_silence(store, ['journey="checkout"'], now=T0, duration=10 * M)
    h.change([step(inc, "opened", T0, "a")], T0)
    for minute in range(1, 10):
        h.flush(T0 + minute * M)
    assert h.sent() == [] and store.outbox_counts()["suppressed"] == 1
    assert [w.kind for w in waiting_groups(store)] == ["opened"]
    h.change([step(inc, "updated", T0 + 9 * M, "b")], T0 + 9 * M)
    h.flush(T0 + 10 * M + 30 * S)
    assert h.sent() == []  # the silence ended at 10:00; the group's ticks: 01:00, 06:00, 11:00
    h.flush(T0 + 11 * M)
    (told,) = h.sent()
    assert told["update"] is False and told["status"] == "firing"
    assert {a["series"][-1] for a in told["anomalies"]} == {"a", "b"}
    assert [n.reason for n in store.notifications() if n.status == "suppressed"] == [
        f"silenced by {s.id}"]
    h.flush(T0 + 16 * M)
    assert len(h.sent()) == 1  # told once; reminders follow repeat_interval


def test_a_muted_incident_that_resolves_meanwhile_stays_silent(h: Harness,
                                                               store: Store) -> None:
    """Keeping the muted first message for a later flush must not tell a resolved one."""
    inc = incident("checkout", "app")
    add_silence(store, ['journey="checkout"'], now=T0, duration=10 * M)
    h.change([step(inc, "opened", T0, "a")], T0)
    h.flush(T0 + M)
    h.change([step(inc, "resolved", T0 + 3 * M)], T0 + 3 * M)
    h.flush(T0 + H)
    assert h.sent() == [] and waiting_groups(store) == []


def test_an_inhibited_incident_is_told_once_its_inhibitor_resolves(h: Harness,
                                                                   store: Store) -> None:
    """The channel incident was inhibited by its journey's incident at its first flush; when
    the journey incident resolves, the channel one (still open) is told, as Alertmanager
    does once the source alert is gone."""
    parent, child = incident("delivery"), incident("delivery", "app")
    h.change([step(parent, "opened", T0, "a"), step(child, "opened", T0, "a")], T0)
    h.flush(T0 + 30 * S, [parent, child])
    assert [p["incident_key"] for p in h.sent()] == [parent.key]
    h.flush(T0 + 5 * M + 30 * S, [parent, child])
    assert len(h.sent()) == 1 and store.outbox_counts()["suppressed"] == 1
    h.change([step(parent, "resolved", T0 + 6 * M)], T0 + 6 * M)
    h.flush(T0 + 10 * M + 30 * S, [child])
    told = [(p["incident_key"], p["status"]) for p in h.sent()]
    assert told == [(parent.key, "firing"), (parent.key, "resolved"), (child.key, "firing")]


def test_an_inhibition_by_alertname_survives_a_restart(store: Store) -> None:
    """After a restart the dispatcher knew the open incidents only by their group labels: a
    rule on ``alertname`` (Alertmanager's usual one) no longer matched the inhibiting
    incident, and the incident it had muted was told at its next flush."""
    cfg = parse_config(CONFIG.replace(
        """['channel=""'], target_matchers: ['channel=~".+"'], equal: [journey]""",
        """['alertname="contacts"'], target_matchers: ['alertname="csat"'],
         equal: [journey]"""), env={})

    def groups() -> AlertGroups:
        return AlertGroups(Dispatcher(cfg.alerting), {"ops", "pager"})

    def change(inc: OpenIncident, metric: str) -> IncidentChange:
        a = anomaly("delivery", inc.group["channel"], T0)
        a = Anomaly(f"{metric}{{}}", metric, a.labels, T0, 1.0, 0.5, 0.4, 0.6, 0.999, 60,
                    Direction.UP, "d")
        return IncidentChange(inc, "opened", (a,), True, T0)

    parent, child = incident("delivery", "app"), incident("delivery", "web")
    changes = [change(parent, "contacts"), change(child, "csat")]
    with store.transaction() as tx:
        groups().apply(tx, changes, {id(c): incident_payload(c) for c in changes}, T0)
    with store.transaction() as tx:  # kill -9 during group_wait: a new process flushes
        groups().flush(tx, T0 + 30 * S, [parent, child])
    rows = {n.incident_key: (n.status, n.reason) for n in store.notifications()}
    assert rows == {parent.key: ("pending", None),
                    child.key: ("suppressed", f"inhibited by {parent.key}")}


def test_a_receiver_muted_on_one_route_is_still_told_through_another(store: Store) -> None:
    """Alertmanager: each route is its own aggregation group, so a critical route pages the
    chat even at night when the team route (continue: true) that also reaches it is muted.
    cxmon has one group per receiver; a time interval mutes it only if it mutes every route
    reaching it."""
    cfg = parse_config("""
sources: {s: {type: sql, url: "sqlite://"}}
metrics: [{name: m, source: s, value: v}]
alerting:
  receivers: [{name: ops}, {name: chat}]
  time_intervals:
    - {name: weekend, time_intervals: [{weekdays: [saturday, sunday]}]}
  route:
    receiver: ops
    group_wait: 0s
    routes:
      - {receiver: chat, matchers: ['journey="checkout"'], mute_time_intervals: [weekend],
         continue: true}
      - {receiver: chat, matchers: ['severity="high"']}
""", env={})
    groups = AlertGroups(Dispatcher(cfg.alerting), {"ops", "chat"})
    saturday = T0 + 5 * 24 * H

    def tell(inc: OpenIncident, severity: int) -> list[str]:
        inc = dataclasses.replace(inc, severity=severity)
        a = anomaly(inc.group["journey"], None, saturday, severity)
        change = IncidentChange(inc, "opened", (a,), True, saturday)
        with store.transaction() as tx:
            groups.apply(tx, [change], {id(change): incident_payload(change)}, saturday)
            groups.flush(tx, saturday)
        return [n.status for n in store.notifications() if n.incident_key == inc.key]

    assert tell(incident("checkout"), 60) == ["pending"]  # high: the second route is not muted
    assert tell(incident("checkout", "app"), 30) == ["suppressed"]  # medium: only the muted one
    (muted,) = [n for n in store.notifications() if n.status == "suppressed"]
    assert muted.reason == "mute time interval weekend (route.routes[0])"
    # the dispatcher's own answer (which receivers to tell now) follows the same rule
    def told(channel: str, severity: int) -> list[str]:
        inc = dataclasses.replace(incident("checkout", channel), severity=severity)
        change = IncidentChange(inc, "opened", (anomaly("checkout", channel, saturday,
                                                        severity),), True, saturday)
        return groups.dispatcher.receivers(change, saturday)

    assert told("web", 60) == ["chat"]
    assert told("phone", 30) == []
