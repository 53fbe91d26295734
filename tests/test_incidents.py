"""Incident grouping: open, update (throttled), resolve after a quiet gap."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from monitor.incidents import IncidentTracker
from monitor.model import Anomaly, Direction

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
H = timedelta(hours=1)


def anomaly(series: str, at: datetime, severity: int = 40, journey: str = "checkout") -> Anomaly:
    return Anomaly(
        series=series, metric=series.split("{")[0], labels={"journey": journey},
        timestamp=at, value=2.0, expected=1.0, lower=0.5, upper=1.5, score=0.9999,
        severity=severity, direction=Direction.UP, detector="default",
    )


def test_anomalies_of_one_journey_close_in_time_form_one_incident() -> None:
    tr = IncidentTracker(["journey"], gap=3 * H, renotify=H)
    opened = tr.observe([anomaly("a", T0), anomaly("b", T0)], T0 + H)
    assert [c.status for c in opened] == ["opened"] and opened[0].notify
    key = opened[0].incident.key
    # same series again one hour later: no spread, no growth -> update without a notification
    same = tr.observe([anomaly("a", T0 + H)], T0 + 2 * H)
    assert same[0].status == "updated" and not same[0].notify and same[0].incident.key == key
    # a new series joins after the renotify period -> notified update
    spread = tr.observe([anomaly("c", T0 + 2 * H)], T0 + 3 * H)
    assert spread[0].notify and spread[0].incident.series == {"a", "b", "c"}
    # another journey is another incident
    other = tr.observe([anomaly("x", T0 + 2 * H, journey="returns")], T0 + 3 * H)
    assert other[0].status == "opened" and other[0].incident.key != key


def test_growth_in_severity_renotifies_but_not_more_than_once_per_period() -> None:
    tr = IncidentTracker(["journey"], gap=3 * H, renotify=H)
    tr.observe([anomaly("a", T0, 30)], T0 + H)
    quick = tr.observe([anomaly("a", T0 + H, 80)], T0 + H + timedelta(minutes=10))
    assert not quick[0].notify  # grew, but within the renotify period
    later = tr.observe([anomaly("a", T0 + 2 * H, 80)], T0 + 3 * H)
    assert later[0].notify and later[0].incident.severity == 80


def test_quiet_incidents_resolve_and_a_late_anomaly_opens_a_new_one() -> None:
    tr = IncidentTracker(["journey"], gap=3 * H)
    first = tr.observe([anomaly("a", T0)], T0 + H)[0].incident.key
    assert tr.resolve_quiet(T0 + 3 * H) == []
    resolved = tr.resolve_quiet(T0 + 4 * H)
    assert [(c.status, c.incident.key, c.notify) for c in resolved] == [("resolved", first, True)]
    again = tr.observe([anomaly("a", T0 + 10 * H)], T0 + 11 * H)
    assert again[0].status == "opened" and again[0].incident.key != first


def test_a_dismissed_incident_takes_its_groups_anomalies_quietly_unless_they_are_worse(
) -> None:
    """Closed as a false alarm (:mod:`alerts.dismiss`), the incident is kept only to take
    its group's anomalies without a word until ``gap`` passes; a higher severity level than
    when dismissed opens a new incident, told as new."""
    tr = IncidentTracker(["journey"], gap=3 * H, renotify=timedelta(0))
    key = tr.observe([anomaly("a", T0, 55)], T0)[0].incident.key  # high
    assert tr.dismiss(key, {"by": "ana", "severity": 55}) and not tr.dismiss("x@T0", {})
    assert tr.active() == []  # closed: it inhibits nothing
    quiet = tr.observe([anomaly("b", T0 + H, 70)], T0 + H)  # a new series, still high
    assert [(c.status, c.incident.key, c.notify) for c in quiet] == [("updated", key, False)]
    worse = tr.observe([anomaly("c", T0 + 2 * H, 80)], T0 + 2 * H)  # critical
    assert [(c.status, c.notify) for c in worse] == [("resolved", True), ("opened", True)]
    assert worse[0].incident.key == key and worse[1].incident.key != key
    assert [inc.key for inc in tr.active()] == [worse[1].incident.key]
    # without a worse one, it ends when its group has been quiet for gap
    tr2 = IncidentTracker(["journey"], gap=3 * H)
    key2 = tr2.observe([anomaly("a", T0, 55)], T0)[0].incident.key
    tr2.dismiss(key2, {"by": "ana", "severity": 55})
    tr2.observe([anomaly("a", T0 + H, 60)], T0 + H)
    assert tr2.resolve_quiet(T0 + 4 * H) == []  # an hour later than without the anomaly
    assert [(c.status, c.incident.key) for c in tr2.resolve_quiet(T0 + 5 * H)] == [
        ("resolved", key2)]


def test_a_rise_after_a_dismissal_in_the_same_minute_gets_a_key_of_its_own() -> None:
    """The key is the group and the minute of the first anomaly; a rise of that minute after
    a dismissal got the dismissed incident's key (its row reopened). The generation counts
    from the dismissed key, so a tracker rebuilt from the store (a restart, a tick repeated
    after a crash) gives the same key again."""
    def rise(tr: IncidentTracker, key: str, severity: int, series: str,
             journey: str = "checkout") -> str:
        tr.dismiss(key, {"by": "ana", "severity": severity - 20})
        at = T0 + timedelta(seconds=30)
        changes = tr.observe([anomaly(series, at, severity, journey)], T0 + H)
        assert [(c.status, c.notify) for c in changes] == [("resolved", True), ("opened", True)]
        assert changes[0].incident.key == key
        return changes[1].incident.key

    tr = IncidentTracker(["journey"], gap=3 * H, renotify=timedelta(0))
    key = tr.observe([anomaly("a", T0, 30)], T0)[0].incident.key
    assert key == "journey=checkout@2026-01-05T10:00Z"
    second = rise(tr, key, 55, "b")
    assert second == f"{key}#2"
    rebuilt = IncidentTracker(["journey"], gap=3 * H, renotify=timedelta(0))
    rebuilt.open = copy.deepcopy(tr.open)  # what Pipeline._restore_incidents rebuilds
    third = rise(tr, second, 80, "c")
    assert third == f"{key}#3" == rise(rebuilt, second, 80, "c")
    # a rise of a later minute needs no generation; a '#' in a group value is no generation
    later = IncidentTracker(["journey"], gap=3 * H, renotify=timedelta(0))
    first = later.observe([anomaly("a", T0 - H, 30, journey="a#2")], T0 - H)[0].incident.key
    assert rise(later, first, 55, "b", "a#2") == "journey=a#2@2026-01-05T10:00Z"


def test_snapshot_restore_undoes_a_step() -> None:
    tr = IncidentTracker(["journey"])
    snap = tr.snapshot()
    tr.observe([anomaly("a", T0)], T0 + H)
    tr.restore(snap)
    assert tr.open == {}


def test_group_by_metric_or_source_forms_one_incident_per_metric_or_source() -> None:
    """``group_by: [metric]`` (Alertmanager's ``[alertname]``) found no ``metric`` among the
    series' labels and made every metric's anomalies one incident."""
    by_metric = IncidentTracker(["metric"], gap=3 * H, renotify=H)
    opened = by_metric.observe([anomaly("csat{}", T0), anomaly("complaints{}", T0),
                                anomaly("csat{}", T0 + H)], T0 + H)
    assert sorted(c.incident.key.split("@")[0] for c in opened) == [
        "metric=complaints", "metric=csat"]
    by_source = IncidentTracker(["source"], gap=3 * H, renotify=H,
                                sources={"csat": "surveys", "complaints": "zendesk",
                                         "contacts": "zendesk"})
    opened = by_source.observe([anomaly("csat{}", T0), anomaly("complaints{}", T0),
                                anomaly("contacts{}", T0)], T0 + H)
    assert sorted((c.incident.key.split("@")[0], len(c.anomalies)) for c in opened) == [
        ("source=surveys", 1), ("source=zendesk", 2)]
