"""Route tree: Alertmanager semantics on tables of cases, config validation with paths,
``cxmon routes test``, and Alertmanager's own doc example routed the same as amtool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alerts.matchers import MatcherError, compile_regex, parse_matcher, parse_matchers
from alerts.routing import Router, alert_labels, label_values, route_warnings
from monitor.cli import app
from monitor.config import parse_config
from monitor.errors import ConfigError
from tests.test_amtool_differential import amtool_receivers, require_amtool

DATA = Path(__file__).parent / "data"
HEAD = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics: [{name: m, source: s, value: v}]
"""

TREE = HEAD + """
alerting:
  receivers: [{name: ops}, {name: checkout}, {name: pager}, {name: app}, {name: eu}]
  route:
    receiver: ops
    group_by: [journey]
    group_wait: 1m
    repeat_interval: 2h
    routes:
      - matchers: ['team="checkout"']
        receiver: checkout
        continue: true
        routes:
          - {matchers: ['channel=~"app|ios"'], receiver: app}
      - match_re: {severity: "high|critical"}
        receiver: pager
        group_by: ['...']
      - matchers: ['region!~"us.*"', 'journey!="support"']
        receiver: eu
        group_interval: 10m
      - {match: {journey: support}}
"""


def router(text: str = TREE) -> Router:
    return Router.from_config(parse_config(text, env={}).alerting)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, ["eu"]),  # a missing label is "": region!~"us.*" and journey!="support" hold
        ({"region": "us-east"}, ["ops"]),
        ({"team": "checkout", "region": "us"}, ["checkout"]),
        ({"team": "checkout", "channel": "app", "region": "us"}, ["app"]),
        ({"team": "checkout", "channel": "apple", "region": "us"}, ["checkout"]),  # anchored
        ({"team": "checkout", "severity": "critical", "region": "us"}, ["checkout", "pager"]),
        ({"severity": "high", "region": "uk"}, ["pager"]),  # no continue: stops at pager
        ({"severity": "highest", "region": "uk"}, ["eu"]),
        ({"journey": "support", "region": "us"}, ["ops"]),  # last route inherits receiver
        ({"journey": "support", "region": "uk"}, ["ops"]),
    ],
)
def test_routing_table(labels: dict[str, str], expected: list[str]) -> None:
    assert router().receivers(labels) == expected


def test_options_are_inherited_and_overridden() -> None:
    r = router()
    pager = r.routes({"severity": "high", "region": "us"})[0]
    assert pager.group_by_all and pager.group_labels({"a": "1"}) == {"a": "1"}
    assert (pager.group_wait, pager.repeat_interval) == (timedelta(minutes=1), timedelta(hours=2))
    assert pager.group_interval == timedelta(minutes=5)  # Alertmanager's default
    eu = r.routes({})[0]
    assert eu.group_by == ("journey",) and eu.group_interval == timedelta(minutes=10)
    assert not eu.continue_ and r.root.routes[0].continue_
    support = r.routes({"journey": "support", "region": "us"})[0]
    assert support.receiver == "ops" and support.path == "route.routes[3]"


def test_min_severity_route_and_cxmon_labels() -> None:
    text = HEAD + """
alerting:
  receivers: [{name: ops}, {name: pager}]
  route:
    receiver: ops
    routes: [{receiver: pager, min_severity: 70, matchers: ['metric="m"']}]
"""
    anomaly_like = type("A", (), {"labels": {"journey": "checkout"}, "metric": "m"})()
    low = alert_labels({"journey": "checkout"}, anomaly_like, 40)  # type: ignore[arg-type]
    high = alert_labels({"journey": "checkout"}, anomaly_like, 80)  # type: ignore[arg-type]
    assert high == {"journey": "checkout", "metric": "m", "alertname": "m", "kind": "outlier",
                    "severity": "critical", "severity_score": "80"}
    assert router(text).receivers(low) == ["ops"]
    assert router(text).receivers(high) == ["pager"]


def test_matcher_syntax() -> None:
    assert str(parse_matcher(' team = "a\\"b" ')) == 'team="a\\"b"'
    assert parse_matcher("a=b c").value == "b c"
    assert parse_matcher("a==b").value == "=b"  # as Alertmanager reads it
    assert parse_matcher('a="x\\ny"').value == "x\ny"
    assert [m.value for m in parse_matchers('{a="1,2", b=~"x|y",}')] == ["1,2", "x|y"]
    assert parse_matcher("env=~prod").matches({"env": "prod"})
    assert not parse_matcher("env=~prod").matches({"env": "production"})
    assert parse_matcher('team!="x"').matches({})
    for bad in ('a="b', "1a=b", 'a=b"c', "a"):
        with pytest.raises(MatcherError):
            parse_matcher(bad)
    for bad_regex in ("(", "a(?=b)", "(a)\\1", "a*+", "(?x)a"):
        with pytest.raises(MatcherError):
            compile_regex(bad_regex)
    assert compile_regex("(?i)ab|c").fullmatch("AB")
    assert compile_regex("[[:digit:]]+").fullmatch("42")


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    return [(p.path, p.message) for p in info.value.problems]


def test_validate_rejects_what_alertmanager_rejects_with_paths() -> None:
    text = HEAD + """
alerting:
  receivers: [{name: ops}]
  time_intervals:
    - name: offhours
      time_intervals:
        - {weekdays: [saturday], times: [{start_time: '18:00', end_time: '09:00'}]}
  inhibit_rules:
    - {source_matchers: ['severity="critical"'], target_match_re: {severity: "(warn"}}
  route:
    receiver: ops
    matchers: ['a="b"']
    routes:
      - receiver: opps
        matchers: ['team="a"', 'team=~"(x"', 'bad matcher']
        group_by: [journey, '...']
        group_interval: 0s
        routes:
          - {mute_time_intervals: [offhours, nights], match: {"0bad": x}, continue: true}
          - {receiver: ops, contnue: true}
"""
    found = problems(text)
    paths = [p for p, _ in found]
    assert "alerting.time_intervals[0].time_intervals[0].times[0].end_time" in paths
    assert "alerting.inhibit_rules[0].target_match_re.severity" in paths
    assert ("alerting.route.matchers", "root route must not have any matchers") in found
    assert "alerting.route.routes[0].matchers[1]" in paths
    assert any(p == "alerting.route.routes[0].matchers[2]" and "bad matcher format" in m
               for p, m in found)
    assert "alerting.route.routes[0].group_by" in paths
    assert "alerting.route.routes[0].group_interval" in paths
    assert "alerting.route.routes[0].routes[0].match.0bad" in paths
    assert ("alerting.route.routes[0].routes[1].contnue",
            "unknown key 'contnue' (did you mean 'continue'?)") in found
    assert any(p == "alerting.route.routes[0].receiver" and "did you mean 'ops'" in m
               for p, m in found)
    assert any(p == "alerting.route.routes[0].routes[0].mute_time_intervals[1]"
               and "'nights' is not defined" in m for p, m in found)


def test_blackhole_receiver_and_defaults() -> None:
    cfg = parse_config(HEAD + "alerting: {receivers: [{name: nowhere}]}", env={})
    assert cfg.alerting.route.receiver == "nowhere"
    assert cfg.alerting.route.group_by == ["journey"]  # cxmon's default grouping
    assert Router.from_config(cfg.alerting).receivers({"a": "b"}) == ["nowhere"]


def test_routes_test_command(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(TREE)
    run = CliRunner().invoke
    out = run(app, ["routes", "test", "-c", str(path), "team=checkout", 'severity="high"',
                    "region=us"])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == "checkout,pager"  # TREE's labels are on no metric: warned
    out = run(app, ["routes", "test", "-c", str(path), "--tree", "region=uk"])
    assert out.stdout.splitlines()[0] == "Routing tree:"
    assert out.stdout.strip().splitlines()[-1] == "eu"
    assert any(line.endswith(" *") and "receiver: eu" in line for line in out.stdout.splitlines())
    out = run(app, ["routes", "test", "-c", str(path), "--verify-receivers", "ops", "region=uk"])
    assert out.exit_code == 1
    out = run(app, ["routes", "test", "-c", str(path), "team!=x"])
    assert out.exit_code != 0


SIMPLE_CASES = [
    {},
    {"service": "foo1"},
    {"service": "foo2", "severity": "critical"},
    {"service": "baz", "severity": "warning"},
    {"service": "foo12", "severity": "critical"},
    {"service": "files"},
    {"service": "files", "severity": "critical"},
    {"service": "database"},
    {"service": "database", "owner": "team-X"},
    {"service": "database", "owner": "team-Y"},
    {"service": "database", "owner": "team-Z", "severity": "critical"},
    {"service": "other", "severity": "critical"},
]


def test_alertmanager_doc_example_loads_unchanged_and_routes_like_amtool() -> None:
    amtool = require_amtool()
    original = yaml.safe_load((DATA / "alertmanager_simple.yml").read_text())
    cfg = parse_config((DATA / "cxmon_alertmanager_simple.yaml").read_text(), env={})
    ours = cfg.alerting.model_dump(by_alias=True, exclude_unset=True)
    assert ours["route"] == original["route"]
    assert ours["inhibit_rules"] == original["inhibit_rules"]
    r = Router.from_config(cfg.alerting)
    for labels in SIMPLE_CASES:
        want = amtool_receivers(amtool, DATA / "alertmanager_simple.yml", labels)
        assert ",".join(r.receivers(labels)) == want, labels


def test_empty_secrets_and_hostless_urls_are_rejected_with_paths() -> None:
    """``PD_KEY=""`` exported empty passed validation and every event failed at send time; an
    empty signing secret let anyone sign feedback; ``url: http://`` failed only when sent."""
    text = HEAD + """
alerting:
  route: {receiver: all}
  receivers:
    - name: all
      slack: {channel: "#c", token: "${SLACK_TOKEN}"}
      pagerduty: {routing_key: "${PD_KEY}"}
      webhook: {url: "http://", secret: ""}
    - {name: port, webhook: {url: "http://hooks.example.com:port/x"}}
  feedback: {signing_secret: " "}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={"SLACK_TOKEN": "", "PD_KEY": ""})
    found = {p.path: p.message for p in info.value.problems}
    bad_url = "must be an http:// or https:// URL with a host (and a valid port)"
    assert found == {
        "alerting.receivers[0].slack.token": "must not be empty",
        "alerting.receivers[0].pagerduty.routing_key": "must not be empty",
        "alerting.receivers[0].webhook.url": bad_url,
        "alerting.receivers[0].webhook.secret": "must not be empty",
        "alerting.receivers[1].webhook.url": bad_url,
        "alerting.feedback.signing_secret": "must not be empty",
    }


def test_a_duration_out_of_range_is_a_problem_with_its_path_not_a_traceback() -> None:
    """``group_wait: 99999999999999999999d`` crashed ``cxmon validate`` (OverflowError);
    ``1000000w`` parsed, then overflowed the flush time at run time."""
    text = HEAD + """
alerting:
  receivers: [{name: ops}]
  route: {receiver: ops, group_wait: 99999999999999999999d, repeat_interval: 1000000w}
"""
    assert problems(text) == [
        ("alerting.route.group_wait",
         "invalid duration '99999999999999999999d': out of range (at most 292y)"),
        ("alerting.route.repeat_interval",
         "invalid duration '1000000w': out of range (at most 292y)"),
    ]


def test_a_whitespace_secret_does_not_mask_its_own_error_message() -> None:
    """A token exported as one space made its error read ``must***not***be***empty``:
    blank values have nothing to hide."""
    text = HEAD + """
alerting:
  route: {receiver: all}
  receivers:
    - {name: all, slack: {channel: "#c", token: "${SLACK_TOKEN}"}}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={"SLACK_TOKEN": " "})
    found = {p.path: p.message for p in info.value.problems}
    assert found == {"alerting.receivers[0].slack.token": "must not be empty"}


def test_a_bad_regex_is_named_without_a_position_shifted_by_the_anchoring() -> None:
    from alerts.matchers import MatcherError, parse_matcher

    with pytest.raises(MatcherError) as info:
        parse_matcher('journey=~"check(out"')
    assert str(info.value) == "error parsing regexp 'check(out': missing ), unterminated subpattern"


def test_no_data_alerts_carry_kind_so_routes_and_inhibition_tell_outages_apart() -> None:
    from alerts.am_config import InhibitRuleConfig
    from alerts.inhibit import Inhibitor

    def like(kind: str, labels: dict[str, str]) -> object:
        return type("A", (), {"labels": labels, "metric": "m", "kind": kind})()

    outage = alert_labels({"journey": "checkout"}, like("no_data", {"journey": "checkout"}), 60)
    kpi = alert_labels({"journey": "checkout"}, like("outlier", {"journey": "checkout"}), 40)
    assert outage["kind"] == "no_data" and kpi["kind"] == "outlier"
    # a series label named kind is the series' own and wins
    assert alert_labels({}, like("outlier", {"kind": "chat"}), 40)["kind"] == "chat"
    rule = InhibitRuleConfig.model_validate({"source_matchers": ['kind="no_data"'],
                                             "target_matchers": ['kind="outlier"'],
                                             "equal": ["journey"]})
    assert Inhibitor.from_config([rule]).inhibited(kpi, [outage])
    assert not Inhibitor.from_config([rule]).inhibited(kpi, [{**outage, "journey": "search"}])


SOURCES = """
sources: {zendesk: {type: sql, url: "sqlite://"}, shop: {type: sql, url: "sqlite://"}}
metrics:
  - {name: csat, source: zendesk, value: {mean: rating}, labels: {journey: support}}
  - {name: dropoff, source: shop, value: {ratio: [a, b]}, labels: {journey: checkout}}
  - {name: tagged, source: shop, value: v, labels: {source: pos, journey: store}}
alerting:
  receivers: [{name: ops}, {name: support}]
  route:
    receiver: ops
    routes:
      - {matchers: ['source="zendesk"'], receiver: support}
      - {matchers: ['source="zendsk"'], receiver: support}      # a typo
      - {matchers: ['source="pos"'], receiver: ops}             # a series label of that name
"""


def _change(*anomalies: object) -> object:
    from monitor.incidents import IncidentTracker

    (change,) = IncidentTracker(["journey"]).observe(list(anomalies), T_ROUTE)  # type: ignore[arg-type]
    return change


T_ROUTE = datetime(2026, 1, 5, 10, tzinfo=UTC)


def _anomaly(metric: str, severity: int, at: datetime = T_ROUTE,
             labels: dict[str, str] | None = None) -> object:
    from monitor.model import Anomaly, Direction, series_key

    labels = labels or {"journey": "support"}
    return Anomaly(series_key(metric, labels), metric, labels, at, 1.0, 2.0, 1.5, 2.5, 0.99,
                   severity, Direction.DOWN, "default")


def test_alerts_carry_their_metrics_source_so_a_route_can_send_support_data_to_support(
        ) -> None:
    """``source`` is the metric's source name: source="zendesk" routes every metric read
    from Zendesk to the support team, with no team label on each metric."""
    from alerts.dispatch import Dispatcher

    cfg = parse_config(SOURCES, env={})
    d = Dispatcher(cfg.alerting, sources={m.name: m.source for m in cfg.metrics})
    change = _change(_anomaly("csat", 40))
    assert d.labels(change)["source"] == "zendesk"  # type: ignore[arg-type]
    assert d.receivers(change, T_ROUTE) == ["support"]  # type: ignore[arg-type]
    other = _change(_anomaly("dropoff", 40, labels={"journey": "checkout"}))
    assert d.labels(other)["source"] == "shop"  # type: ignore[arg-type]
    assert d.receivers(other, T_ROUTE) == ["ops"]  # type: ignore[arg-type]
    # a series label named source is the series' own and wins
    mine = alert_labels({}, _anomaly("tagged", 40, labels={"source": "pos"}), 40,  # type: ignore[arg-type]
                        source="shop")
    assert mine["source"] == "pos"
    # validate knows the label: the typo is dead, the others are not
    values = label_values(cfg.metrics)
    assert values["source"] == {"zendesk", "shop", "pos"}
    found = dict(route_warnings(cfg.alerting, cfg.metrics))
    assert list(found) == ["alerting.route.routes[1].matchers"]
    assert 'source="zendsk" matches no alert (source: it is "pos" or "shop" or "zendesk")' \
        in found["alerting.route.routes[1].matchers"]


def test_a_change_of_several_anomalies_is_routed_by_its_most_severe() -> None:
    """The labels of a change come from its headline anomaly, the most severe (the one its
    message leads with), not the first one detected: an earlier mild csat dip must not send
    a severe dropoff spike of the same incident to csat's team."""
    from alerts.dispatch import Dispatcher
    from alerts.payload import incident_payload

    cfg = parse_config(SOURCES, env={})
    d = Dispatcher(cfg.alerting, sources={m.name: m.source for m in cfg.metrics})
    mild = _anomaly("csat", 30, at=T_ROUTE - timedelta(hours=1))
    severe = _anomaly("dropoff", 70)
    change = _change(mild, severe)
    labels = d.labels(change)  # type: ignore[arg-type]
    assert (labels["metric"], labels["source"]) == ("dropoff", "shop")
    assert labels["severity"] == "high"
    assert incident_payload(change)["anomalies"][0]["metric"] == "dropoff"  # type: ignore[arg-type]
    assert d.receivers(change, T_ROUTE) == ["ops"]  # type: ignore[arg-type]


DEAD = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics:
  - {name: dropoff, source: s, value: v, labels: {team: checkout-squad}, dimensions: [channel]}
  - {name: csat, source: s, value: v, split_by: [journey]}
alerting:
  receivers: [{name: ops}, {name: checkout}]
  route:
    receiver: ops
    routes:
      - {matchers: ['team="checkout"'], receiver: checkout}          # a typo: checkout-squad
      - {matchers: ['team="checkout-squad"', 'channel="app"'], receiver: checkout}
      - {matchers: ['severity="warning"'], receiver: checkout}       # Alertmanager's name
      - {matchers: ['teem!="x"', 'journey="anything"', 'kind="no_data"'], receiver: ops}
      - {matchers: ['metric="dropout"'], receiver: ops}
  inhibit_rules:
    - {source_matchers: ['kind="outage"'], target_matchers: ['team=""'], equal: [journey]}
"""


def test_route_warnings_name_the_matchers_no_alert_can_satisfy() -> None:
    cfg = parse_config(DEAD, env={})
    values = label_values(cfg.metrics)
    assert values["team"] == {"checkout-squad", ""} and values["channel"] is None
    found = dict(route_warnings(cfg.alerting, cfg.metrics))
    assert set(found) == {"alerting.route.routes[0].matchers",
                          "alerting.route.routes[2].matchers",
                          "alerting.route.routes[4].matchers",
                          "alerting.inhibit_rules[0].source_matchers"}
    assert found["alerting.route.routes[0].matchers"] == (
        'team="checkout" matches no alert (team: it is "checkout-squad" or unset): this route '
        "is never taken")
    assert '"low" or "medium"' in found["alerting.route.routes[2].matchers"]
    assert "never mutes" in found["alerting.inhibit_rules[0].source_matchers"]


def test_validate_routes_test_and_silence_add_warn_about_dead_matchers(tmp_path: Path) -> None:
    from monitor.store import Store

    path = tmp_path / "c.yaml"
    path.write_text(f"store: sqlite:///{tmp_path / 's.db'}\n{DEAD}")
    Store.open(f"sqlite:///{tmp_path / 's.db'}").close()
    runner = CliRunner()
    out = runner.invoke(app, ["routes", "test", "-c", str(path), "team=checkout"])
    assert out.exit_code == 0 and out.stdout.strip() == "checkout"  # the label set given
    assert ('warning alerting.route.routes[0].matchers: team="checkout" matches no alert'
            in out.stderr)
    out = runner.invoke(app, ["silence", "add", "-c", str(path), 'team="checkout"'])
    assert out.exit_code == 0 and len(out.stdout.strip()) == 36  # stored all the same
    assert 'warning: team="checkout" matches no alert' in out.stderr
    out = runner.invoke(app, ["silence", "add", "-c", str(path), 'team="checkout-squad"'])
    assert out.exit_code == 0 and out.stderr == ""
    out = runner.invoke(app, ["validate", "-c", str(path)])  # where a new user looks first
    assert out.exit_code == 0, out.output
    assert ('warning alerting.route.routes[0].matchers: team="checkout" matches no alert'
            in " ".join(out.output.split()))


def test_tree_shows_each_routes_time_intervals() -> None:
    cfg = parse_config(HEAD + """
alerting:
  receivers: [{name: ops}, {name: pager}]
  route:
    receiver: ops
    routes:
      - {matchers: ['severity="low"'], receiver: ops, active_time_intervals: [office]}
      - {receiver: pager, mute_time_intervals: [maint, office]}
  time_intervals:
    - {name: office, time_intervals: [{weekdays: ['monday:friday']}]}
    - {name: maint, time_intervals: [{weekdays: [saturday]}]}
""", env={})
    lines = Router.from_config(cfg.alerting).tree({}).splitlines()
    assert lines[2].endswith("receiver: ops  group_by: [journey]  active: [office]")
    assert "mute: [maint, office]" in lines[3] and "active" not in lines[3]
    assert "mute" not in lines[1] and "active" not in lines[1]


def test_alert_routing_example_routes_as_its_comments_say() -> None:
    import re

    from monitor.config import load_config

    path = Path(__file__).resolve().parents[1] / "examples" / "alert_routing.yaml"
    cfg = load_config(path, env={})
    assert route_warnings(cfg.alerting, cfg.metrics) == []
    text = path.read_text()
    said = re.findall(r"routes test -c examples/alert_routing\.yaml ((?:[\w-]+=[\w-]+ ?)+)\n"
                      r"#\s+# -> ([\w,-]+)", text)
    assert len(said) == 3
    for labels, expected in said:
        res = CliRunner().invoke(app, ["routes", "test", "-c", str(path), *labels.split()])
        assert res.exit_code == 0 and res.stdout.strip() == expected, (labels, res.output)
    router = Router.from_config(cfg.alerting)
    low = router.routes({"team": "checkout-squad", "severity": "low", "severity_score": "20"})
    assert [r.active_time_intervals for r in low] == [("business-hours",)]
    from alerts.timeintervals import in_any

    named = {t.name: t for t in cfg.alerting.time_intervals}
    sat = datetime(2026, 1, 10, 23, 0, tzinfo=UTC)  # a Saturday
    assert in_any(["saturday-maintenance"], named, sat)
    assert in_any(["saturday-maintenance"], named, sat + timedelta(hours=2, minutes=59))
    assert not in_any(["saturday-maintenance"], named, sat + timedelta(hours=3))
    assert not in_any(["saturday-maintenance"], named, sat - timedelta(hours=2))


def test_routes_test_says_which_labels_of_a_named_metric_were_left_out() -> None:
    """``metric=complaints`` alone reaches the default receiver, though every alert of
    complaints carries ``team: cx-ops``: stderr says so, stdout stays amtool's answer."""
    config = str(Path(__file__).parent.parent / "examples" / "teams.yaml")
    res = CliRunner().invoke(app, ["routes", "test", "-c", config, "metric=complaints",
                                   "tem=x"])
    assert res.exit_code == 0, res.output
    assert res.stdout == "checkout-chat\n"
    assert ("note: the alerts of complaints also carry team=cx-ops; with them they reach "
            "cx-ops-chat") in res.stderr
    assert "warning: label tem is on no alert of this config (did you mean team?)" in res.stderr
