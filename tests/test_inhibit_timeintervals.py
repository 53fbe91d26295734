"""Inhibition and time intervals against Alertmanager's documented behaviour (tables of cases),
and the dispatcher that applies them to incident changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.am_config import InhibitRuleConfig
from alerts.dispatch import Dispatcher
from alerts.inhibit import Inhibitor, InhibitRule
from alerts.timeintervals import TimeIntervalSpec
from monitor.config import parse_config
from monitor.incidents import IncidentChange, OpenIncident
from monitor.model import Anomaly, Direction

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday


def rule(**cfg: object) -> Inhibitor:
    return Inhibitor([InhibitRule.from_config(InhibitRuleConfig.model_validate(cfg))])


CRIT_WARN = {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
             "equal": ["alertname", "cluster"]}


@pytest.mark.parametrize(
    ("target", "firing", "inhibited"),
    [
        # same alertname and cluster: the critical mutes the warning
        ({"alertname": "A", "cluster": "x", "severity": "warning"},
         [{"alertname": "A", "cluster": "x", "severity": "critical"}], True),
        # an equal label differs
        ({"alertname": "A", "cluster": "x", "severity": "warning"},
         [{"alertname": "A", "cluster": "y", "severity": "critical"}], False),
        # equal labels missing on both sides count as equal (documented CAUTION)
        ({"severity": "warning"}, [{"severity": "critical"}], True),
        # missing on one side only: not equal
        ({"severity": "warning", "cluster": "x"}, [{"severity": "critical"}], False),
        # the target does not match the target matchers
        ({"alertname": "A", "cluster": "x", "severity": "info"},
         [{"alertname": "A", "cluster": "x", "severity": "critical"}], False),
        # no source firing
        ({"alertname": "A", "cluster": "x", "severity": "warning"}, [], False),
    ],
)
def test_inhibition_table(target: dict, firing: list, inhibited: bool) -> None:
    assert rule(**CRIT_WARN).inhibited(target, firing) is inhibited


def test_alert_matching_both_sides_is_not_inhibited_by_its_peers() -> None:
    both = rule(source_matchers=['team="a"'], target_matchers=['team="a"'], equal=["journey"])
    peer = {"team": "a", "journey": "checkout"}
    assert not both.inhibited(peer, [{"team": "a", "journey": "checkout", "x": "1"}])


def test_journey_incident_inhibits_its_channels_with_legacy_syntax() -> None:
    inh = rule(source_match={"channel": ""}, target_match_re={"channel": ".+"},
               equal=["journey", "metric"])
    parent = {"journey": "checkout", "metric": "dropoff"}
    assert inh.inhibited({"journey": "checkout", "metric": "dropoff", "channel": "app"}, [parent])
    assert not inh.inhibited({"journey": "search", "metric": "dropoff", "channel": "app"},
                             [parent])


def spec(**cfg: object) -> TimeIntervalSpec:
    return TimeIntervalSpec.model_validate(cfg)


@pytest.mark.parametrize(
    ("cfg", "at", "inside"),
    [
        ({"times": [{"start_time": "09:00", "end_time": "17:00"}]}, T0, True),
        ({"times": [{"start_time": "09:00", "end_time": "10:00"}]}, T0, False),  # end exclusive
        ({"times": [{"start_time": "00:00", "end_time": "24:00"}]}, T0.replace(hour=23), True),
        ({"weekdays": ["monday:friday"]}, T0, True),
        ({"weekdays": ["saturday", "sunday"]}, T0, False),
        ({"weekdays": ["Sunday"]}, T0 - timedelta(days=1), True),  # case-insensitive
        ({"days_of_month": ["1:7"]}, T0, True),
        ({"days_of_month": ["-1"]}, datetime(2026, 2, 28, tzinfo=UTC), True),  # last day
        ({"days_of_month": ["-3:-1"]}, datetime(2026, 1, 28, tzinfo=UTC), False),
        ({"days_of_month": ["31"]}, datetime(2026, 2, 28, tzinfo=UTC), False),
        ({"months": ["january:march"]}, T0, True),
        ({"months": ["2:12"]}, T0, False),
        ({"years": ["2025:2026"]}, T0, True),
        ({"years": ["2027"]}, T0, False),
        # 10:00 UTC is 21:00 in Sydney (UTC+11 in January)
        ({"times": [{"start_time": "20:00", "end_time": "22:00"}], "location": "Australia/Sydney"},
         T0, True),
        ({"weekdays": ["monday"], "times": [{"start_time": "11:00", "end_time": "12:00"}]},
         T0, False),  # every field must match
        ({}, T0, True),
    ],
)
def test_time_interval_table(cfg: dict, at: datetime, inside: bool) -> None:
    assert spec(**cfg).contains(at) is inside


@pytest.mark.parametrize(
    "bad",
    [
        {"times": [{"start_time": "10:00", "end_time": "09:00"}]},
        {"times": [{"start_time": "9:00", "end_time": "10:00"}]},
        {"weekdays": ["friday:monday"]},
        {"weekdays": ["funday"]},
        {"days_of_month": ["0"]},
        {"days_of_month": ["-1:5"]},
        {"months": ["march:january"]},
        {"months": ["13"]},
        {"years": ["2027:2026"]},
        {"location": "Mars/Olympus"},
    ],
)
def test_time_interval_rejects_what_alertmanager_rejects(bad: dict) -> None:
    with pytest.raises(ValueError):
        spec(**bad)


# -- dispatcher --------------------------------------------------------------------------------

CONFIG = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics: [{name: m, source: s, value: v}]
alerting:
  receivers: [{name: ops}, {name: oncall}]
  time_intervals:
    - name: weekend
      time_intervals: [{weekdays: [saturday, sunday]}]
    - name: office
      time_intervals: [{times: [{start_time: '09:00', end_time: '17:00'}]}]
  inhibit_rules:
    - {source_matchers: ['channel=""'], target_matchers: ['channel=~".+"'], equal: [journey]}
  route:
    receiver: ops
    group_by: [journey, channel]
    group_interval: 30m
    routes:
      - {receiver: oncall, matchers: ['journey="checkout"'], mute_time_intervals: [weekend],
         continue: true}
      - {receiver: ops, active_time_intervals: [office]}
"""


def anomaly(journey: str, channel: str | None = None, severity: int = 60) -> Anomaly:
    labels = {"journey": journey, **({"channel": channel} if channel else {})}
    return Anomaly(f"m{labels}", "m", labels, T0, 1.0, 0.5, 0.4, 0.6, 0.999, severity,
                   Direction.UP, "d")


def change(a: Anomaly, status: str = "opened", at: datetime = T0) -> IncidentChange:
    group = dict(a.labels)
    inc = OpenIncident(key=str(sorted(group.items())), group=group, opened_at=T0,
                       last_anomaly_at=T0, severity=a.severity)
    return IncidentChange(inc, status, (a,) if status != "resolved" else (), True, at)


def dispatcher() -> Dispatcher:
    return Dispatcher(parse_config(CONFIG, env={}).alerting)


def test_dispatch_routes_and_time_intervals() -> None:
    d = dispatcher()
    c = change(anomaly("checkout"))
    d.observe(c)
    assert d.receivers(c, T0) == ["oncall", "ops"]
    evening = change(anomaly("search"))
    d.observe(evening)
    assert d.receivers(evening, T0.replace(hour=20)) == []  # ops only active in office hours
    saturday = T0 + timedelta(days=5)
    assert d.receivers(change(anomaly("returns", "web")), saturday) == ["ops"]
    assert d.receivers(change(anomaly("search", "web")), saturday) == []  # inhibited
    weekend = change(anomaly("checkout", "app"))
    assert dispatcher().receivers(weekend, saturday) == ["ops"]  # oncall muted
    assert [m.reason for m in d.muted] == [
        "outside active time intervals office (route.routes[1])",
        "inhibited by [('journey', 'search')]",  # the incident key of the inhibiting one
    ]


def test_dispatch_inhibition_and_resolve() -> None:
    d = dispatcher()
    parent = change(anomaly("checkout"))
    child = change(anomaly("checkout", "app"))
    other = change(anomaly("search", "app"))
    for c in (parent, child, other):
        d.observe(c)
    assert d.receivers(child, T0) == []  # the journey-level incident inhibits the channel
    assert d.muted[-1].reason == f"inhibited by {parent.incident.key}"
    assert d.receivers(other, T0) == ["ops"]
    assert d.receivers(parent, T0) == ["oncall", "ops"]
    # group_interval is applied by alerts/grouping.py (tests/test_grouping.py), not here
    resolved = change(anomaly("checkout"), "resolved")
    d.observe(resolved)
    assert d.receivers(resolved, T0.replace(hour=20)) == ["oncall", "ops"]  # those told
    assert d.receivers(child, T0) == ["oncall", "ops"]  # no longer inhibited


def test_a_night_window_that_wraps_midnight_says_how_to_split_it() -> None:
    with pytest.raises(ValueError, match="start time cannot be equal or greater than end time"
                       r" \(times do not wrap past midnight: 22:00–24:00 in one entry, "
                       "00:00–02:00 with the next day's weekdays in another"):
        TimeIntervalSpec.model_validate({"times": [{"start_time": "22:00", "end_time": "02:00"}]})
    with pytest.raises(ValueError) as equal:  # equal times: no wrap to explain
        TimeIntervalSpec.model_validate({"times": [{"start_time": "09:00", "end_time": "09:00"}]})
    assert "wrap" not in str(equal.value)
