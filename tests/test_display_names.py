"""Display names: a metric's ``title`` and ``display.labels`` / ``display.values`` are what
people read in Slack, the console and PagerDuty; identifiers stay in series keys, ``labels``,
links and the webhook's fields (which gain the names beside them). Without names, every text
is what it was (the exact-text tests in test_slack.py and test_console_notifier.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from alerts.blocks import MAX_HEADER
from alerts.display import Names
from alerts.grouping import merge_payloads
from alerts.notifiers.config import SlackReceiverConfig
from alerts.notifiers.console import ConsoleNotifier, mix_text, reminder_line
from alerts.notifiers.pagerduty import pagerduty_event
from alerts.notifiers.slack import SlackNotifier
from alerts.notifiers.webhook import webhook_body
from alerts.payload import incident_payload
from dashboards.grafana import journey_dashboard
from monitor.config import display_warnings, parse_config
from monitor.errors import ConfigError
from monitor.incidents import IncidentTracker
from monitor.model import Anomaly, Direction, Series
from monitor.pipeline import Pipeline
from monitor.store import Store
from tests.fakes.slack_server import TOKEN, SlackServer
from tests.test_cli import validate_warnings
from tests.test_slack import PAYLOAD

T0 = datetime(2026, 1, 27, 11, tzinfo=UTC)

CONFIG = """
sources: {s: {type: sql, url: "sqlite://"}}
metrics:
  - name: checkout_dropoff_rate
    title: Checkout drop-off rate
    description: Share of checkout sessions abandoned before payment.
    source: s
    value: {ratio: [abandoned, started]}
    dimensions: [channel, region]
    labels: {journey: checkout, team: checkout-squad}
  - {name: complaints, source: s, value: n, dimensions: [channel], labels: {journey: checkout}}
display:
  labels: {channel: Channel, region: Region}
  values:
    channel: {app: Mobile app, web: Website}
    region: {uk: UK}
    journey: {checkout: Checkout}
alerting:
  receivers: [{name: ops}]
"""
#: the same config without any name
PLAIN = CONFIG.split("display:")[0].replace("    title: Checkout drop-off rate\n", "") + (
    "alerting:\n  receivers: [{name: ops}]\n")

DISPLAY = {"metrics": {"checkout_dropoff_rate": "Checkout drop-off rate",
                       "complaints": "Complaints"},
           "labels": {"channel": "Channel", "region": "Region"},
           "values": {"channel": {"app": "Mobile app", "web": "Website"},
                      "journey": {"checkout": "Checkout"}, "region": {"uk": "UK"}}}


def anomaly(metric: str, labels: dict[str, str], value: float, expected: float,
            severity: int, at: datetime = T0) -> Anomaly:
    s = Series(metric, {"journey": "checkout", **labels}, tuple(labels))
    return Anomaly(s.key, s.metric, s.labels, at, value, expected, expected * 0.75,
                   expected * 1.25, 0.999, severity, Direction.UP, "default")


ANOMALIES = (
    anomaly("checkout_dropoff_rate", {"channel": "app", "region": "uk"}, 0.587, 0.335, 35),
    anomaly("complaints", {"channel": "web"}, 140.0, 41.0, 30),
)


def payload_for(config: str, *anomalies: Anomaly) -> dict[str, Any]:
    """The payload the pipeline builds for the incident these anomalies open."""
    cfg = parse_config(config, env={})
    (change,) = IncidentTracker(["journey"]).observe(list(anomalies or ANOMALIES), T0)
    return incident_payload(change, percent={"checkout_dropoff_rate"},
                            names=Names.from_config(cfg))


# -- config ----------------------------------------------------------------------------------


def test_the_config_section_and_the_metric_title() -> None:
    cfg = parse_config(CONFIG, env={})
    assert cfg.metric("checkout_dropoff_rate").title == "Checkout drop-off rate"
    assert cfg.metric("checkout_dropoff_rate").description.startswith("Share of")
    assert cfg.metric("complaints").title is None
    assert cfg.display.labels == {"channel": "Channel", "region": "Region"}
    assert cfg.display.values["region"] == {"uk": "UK"}
    assert parse_config(PLAIN, env={}).display.model_dump() == {"labels": {}, "values": {},
                                                        "timezone": "UTC"}


def test_bad_shapes_are_listed_by_path() -> None:
    text = CONFIG.replace("title: Checkout drop-off rate", "title: '  '").replace(
        "display:\n", "display:\n  colours: {app: blue}\n").replace(
        "labels: {channel: Channel, region: Region}",
        "labels: {channel: Channel, region: channel, Bad-Name: x}").replace(
        "region: {uk: UK}", "region: {uk: UK, no: Norway, 1: One}\n    store: [a, b]")
    with pytest.raises(ConfigError) as exc:
        parse_config(text, env={})
    assert [(p.path, p.message) for p in exc.value.problems] == [
        ("metrics[0].title", "must not be blank"),
        ("display.colours", "unknown key 'colours' (keys here: labels, values, timezone)"),
        ("display.labels.Bad-Name", "must be an identifier: letters, digits and _, not "
                                    "starting with a digit (e.g. sales_channel); a column "
                                    "named otherwise is renamed in the export or the query "
                                    "(select \"sales-channel\" as sales_channel)"),
        ("display.values.region", "a label value is read by YAML as a boolean (yes, no, on, "
                                  "off, true, false), not text: quote it ('no': Norway)"),
        ("display.values.store", "Input should be a valid dictionary"),
    ]
    # the structure once right, names that alerts could not tell apart
    text = CONFIG.replace("region: Region", "region: channel").replace(
        "web: Website", "web: mobile APP").replace("title: Checkout drop-off rate",
                                                   "title: \"Checkout\\ndrop-off\"")
    with pytest.raises(ConfigError) as exc:
        parse_config(text, env={})
    assert [(p.path, p.message) for p in exc.value.problems] == [
        ("metrics[0].title", "must be one line (no line breaks)"),
        ("display.labels.region", "display name 'channel' is already that of label "
                                  "'channel': alerts could not tell them apart"),
        ("display.values.channel.web", "display name 'mobile APP' is already that of "
                                       "channel value 'app': alerts could not tell them apart"),
    ]


def test_validate_warns_about_names_nothing_uses(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,n\n")
    text = (
        "sources:\n  f: {type: files, path: 'a.csv'}\n"
        "detectors:\n  fast: {type: surprise}\n"
        "metrics:\n"
        "  - {name: a, source: f, timestamp: ts, value: n, dimensions: [channel], "
        "detectors: [fast], title: Orders}\n"
        "  - {name: b, source: f, timestamp: ts, value: n, split_by: [journey], "
        "detectors: [fast], title: orders}\n"
        "display:\n  labels: {chanel: Channel, journey: Journey}\n"
        "  values: {region: {uk: UK}}\n"
    )
    assert validate_warnings(tmp_path, text) == [
        "warning display.labels.chanel: no metric has a label 'chanel' (did you mean "
        "'channel'?); metric labels: channel, journey",
        "warning display.values.region: no metric has a label 'region'; metric labels: "
        "channel, journey",
        "warning metrics[1].title: 'orders' is also the title of a (metrics[0]): alerts "
        "could not tell them apart",
    ]
    assert display_warnings(parse_config(CONFIG, env={})) == []


# -- payload ---------------------------------------------------------------------------------


def test_the_payload_keeps_identifiers_and_carries_the_names() -> None:
    p = payload_for(CONFIG)
    assert p["group"] == {"journey": "checkout"} and p["journey"] == "checkout"
    assert p["title"] == "Checkout journey · Checkout drop-off rate, complaints anomalous"
    top = p["anomalies"][0]
    assert top["metric"] == "checkout_dropoff_rate"
    assert top["labels"] == {"channel": "app", "journey": "checkout", "region": "uk"}
    assert top["title"] == "Checkout drop-off rate"
    assert top["display"] == {"Channel": "Mobile app", "journey": "Checkout", "Region": "UK"}
    assert p["anomalies"][1]["display"] == {"Channel": "Website", "journey": "Checkout"}
    assert "title" not in p["anomalies"][1]  # complaints has no title
    assert p["display"] == {
        "metrics": {"checkout_dropoff_rate": "Checkout drop-off rate"},
        "labels": {"channel": "Channel", "region": "Region"},
        "values": {"channel": {"app": "Mobile app", "web": "Website"},
                   "journey": {"checkout": "Checkout"}, "region": {"uk": "UK"}},
    }


def test_without_names_the_payload_is_what_it_was() -> None:
    p = payload_for(PLAIN)
    assert "display" not in p
    assert p["title"] == "journey=checkout: checkout_dropoff_rate, complaints anomalous"
    assert all("title" not in a and "display" not in a for a in p["anomalies"])
    (change,) = IncidentTracker(["journey"]).observe(list(ANOMALIES), T0)
    # only the metrics' number formats (tests/test_alert_numbers.py) come from the config
    formats = Names.from_config(parse_config(PLAIN, env={})).formats
    assert p == incident_payload(change, percent={"checkout_dropoff_rate"},
                                 names=Names(formats=formats))


def test_the_pipeline_threads_the_names_into_its_payloads(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG, env={})
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        pipeline = Pipeline(cfg, store, notifiers={})
        changes = IncidentTracker(["journey"]).observe(list(ANOMALIES), T0)
        (p,) = pipeline._payloads(changes).values()
        assert p["display"]["metrics"] == {"checkout_dropoff_rate": "Checkout drop-off rate"}
        pipeline.close()
    finally:
        store.close()


def test_a_merged_notification_has_the_names_of_both() -> None:
    first = {**PAYLOAD, "display": {"metrics": {"a": "A"}, "values": {"channel": {"app": "App"}}}}
    second = {**PAYLOAD, "display": {"metrics": {"b": "B"}, "values": {"channel": {"web": "Web"}},
                                     "labels": {"channel": "Channel"}}}
    assert merge_payloads(first, second)["display"] == {
        "metrics": {"a": "A", "b": "B"}, "labels": {"channel": "Channel"},
        "values": {"channel": {"app": "App", "web": "Web"}}}
    assert "display" not in merge_payloads(PAYLOAD, PAYLOAD)


def test_the_webhook_body_has_identifiers_and_names_side_by_side() -> None:
    body = json.loads(webhook_body("hook", "k", payload_for(CONFIG)))["notification"]
    top = body["anomalies"][0]
    assert (top["metric"], top["title"]) == ("checkout_dropoff_rate", "Checkout drop-off rate")
    assert top["labels"]["channel"] == "app" and top["display"]["Channel"] == "Mobile app"
    assert body["display"]["values"]["region"] == {"uk": "UK"}


# -- what people read ------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer() as server:  # refuses what breaks a Block Kit limit
        yield server


def sent_to_slack(server: SlackServer, payload: dict[str, Any]) -> dict[str, Any]:
    cfg = SlackReceiverConfig(token=TOKEN, channel="#checkout-alerts", api_url=server.api_url)
    SlackNotifier("checkout", cfg).deliver(payload, f"n-{len(server.messages)}")
    return server.messages[-1]


def test_slack_reads_the_names_from_the_first_line_to_the_resolution(
        slack: SlackServer) -> None:
    msg = sent_to_slack(slack, payload_for(CONFIG))
    assert msg["text"] == (
        "Anomaly: Checkout journey · Checkout drop-off rate +75% (58.7% vs 33.5% expected) in "
        "Channel: Mobile app, Region: UK; also complaints · sev 35 medium")
    blocks = msg["attachments"][0]["blocks"]
    assert blocks[0]["text"]["text"] == (
        ":large_yellow_circle: Anomaly · Checkout journey · Checkout drop-off rate +75% in "
        "Channel: Mobile app, Region: UK; also complaints")
    assert [f["text"] for f in blocks[1]["fields"]] == [
        "*Severity*\n:large_yellow_circle: 35 · medium", "*Journey*\nCheckout",
        "*Metric*\nCheckout drop-off rate, complaints", "*Since*\n2026-01-27 11:00 UTC"]
    assert blocks[2]["text"]["text"] == (
        "*Checkout drop-off rate* · Channel: Mobile app, Region: UK at 2026-01-27 11:00 UTC\n"
        "*Value 58.7%* vs expected 33.5% (band 25.1%–41.9%), *+75%* (+25.2 pts) · sev 35")
    assert blocks[3]["text"]["text"] == (
        "*Related anomalies* (1, times UTC)\n"
        "Moved in this order: Checkout drop-off rate (11:00) → complaints (11:00)\n"
        "• complaints · Channel: Website: 140 vs 41 (+241%), sev 30, 11:00")
    assert blocks[-1]["elements"][0]["text"] == (  # identifiers where machines read
        "cxmon · incident `journey=checkout@2026-01-27T11:00Z`")

    resolved = {**payload_for(CONFIG), "status": "resolved", "anomalies": [],
                "resolved_at": "2026-01-28T19:00:00+00:00",
                "measures": [{"metric": "checkout_dropoff_rate"}, {"metric": "complaints"}]}
    assert sent_to_slack(slack, resolved)["text"] == (
        "Resolved: Checkout journey · Checkout drop-off rate, complaints back to normal after "
        "1 d 8 h · peak sev 35")


def test_slack_root_cause_mix_shift_order_and_update_line_use_the_names(
        slack: SlackServer) -> None:
    update = {
        **copy.deepcopy(PAYLOAD), "display": DISPLAY, "update": True,
        "measures": [{"metric": "checkout_dropoff_rate", "first_at": "2026-01-05T10:00:00Z"},
                     {"metric": "complaints", "first_at": "2026-01-05T11:00:00Z"}],
        "changes": {"since": "2026-01-05T10:05:00+00:00", "new_measures": ["complaints"],
                    "new_series": ['complaints{channel="web",journey="checkout"}'],
                    "new_series_total": 1,
                    "new_root_causes": ["checkout_dropoff_rate: channel=web, region=uk"],
                    "new_root_cause_items": [{"metric": "checkout_dropoff_rate", "labels": {
                        "channel": "web", "region": "uk"}}]},
    }
    update["root_cause"] = [
        {"metric": "checkout_dropoff_rate", "elements": [{"channel": "app", "region": "uk"}],
         "share": 0.78},
        {"metric": "complaints", "elements": [], "split": {}, "mix": {
            "dimension": "channel", "value": "web", "share_usual": 0.2, "share_now": 0.7,
            "rate_usual": 0.5, "rate_overall": 0.3, "portion": 0.9}},
    ]
    msg = sent_to_slack(slack, update)
    changed = ("new measure Complaints; also anomalous now: Channel: Website; new root cause "
               "Checkout drop-off rate: Channel: Website, Region: UK")
    assert msg["text"].startswith(f"Update: {changed} · Checkout journey · Checkout drop-off "
                                  "rate +96% (0.412 vs 0.210 expected) in Channel: Mobile app")
    texts = [b.get("text", {}).get("text") or b.get("elements", [{}])[0].get("text")
             for b in msg["attachments"][0]["blocks"]]
    assert f"*Update* since 2026-01-05 10:05 UTC: {changed}" in texts
    assert ("*Root cause*: where the change came from\n"
            "• *Checkout drop-off rate*: `Channel: Mobile app` `Region: UK` — 78% of change\n"
            "• *Complaints*: mix shift: Channel: Website went from 20% to 70% of the volume, "
            "and its usual rate is 0.500 (0.300 overall): 90% of change") in texts
    assert ("*Related anomalies* (2, times UTC)\n"
            "Moved in this order: Checkout drop-off rate (10:00) → Complaints (11:00)\n"
            "• Checkout drop-off rate · total: 0.305 vs 0.200 (+52%), sev 61, 10:00\n"
            "• Complaints · Channel: Mobile app: 140 vs 41 (+241%), sev 40, 11:00") in texts


def test_long_names_keep_to_slacks_limits(slack: SlackServer) -> None:
    """Display names are longer than identifiers: the header drops the other measures
    first, then is cut; the fake Slack API refuses anything over a limit."""
    long = "x" * 100
    names = {"metrics": {"checkout_dropoff_rate": "Checkout drop-off rate, all channels"},
             "labels": {"channel": long[:60], "region": long[:70]},
             "values": {"channel": {"app": long}, "region": {"uk": long}}}
    payload = {**payload_for(CONFIG), "display": names}
    payload["anomalies"] = payload["anomalies"] * 30
    msg = sent_to_slack(slack, payload)
    header = msg["attachments"][0]["blocks"][0]["text"]["text"]
    assert len(header) <= MAX_HEADER and header.endswith("… (truncated)")
    short = {**payload_for(CONFIG), "display": {"metrics": {"complaints": "C" * 30}}}
    header = sent_to_slack(slack, short)["attachments"][0]["blocks"][0]["text"]["text"]
    assert header == (":large_yellow_circle: Anomaly · checkout journey · "
                      "checkout_dropoff_rate +75% in channel=app, region=uk; also " + "C" * 30)
    longer = {**short, "display": {"metrics": {"complaints": "C" * 60}}}
    header = sent_to_slack(slack, longer)["attachments"][0]["blocks"][0]["text"]["text"]
    assert header == (":large_yellow_circle: Anomaly · checkout journey · "
                      "checkout_dropoff_rate +75% in channel=app, region=uk")  # also: dropped


def printed(payload: dict[str, Any]) -> list[str]:
    console = Console(width=160, record=True, color_system=None)
    ConsoleNotifier(console).send(payload)
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_the_console_reads_the_names() -> None:
    p = payload_for(CONFIG)
    lines = printed(p)
    assert lines[0].startswith("╭─") and (
        " FIRING sev 35 medium · Checkout journey · Checkout drop-off rate, complaints "
        "anomalous " in lines[0])
    rows = [line.split("│")[1].strip() for line in lines if "01-27 11:00" in line]
    assert rows == ["Checkout drop-off rate · Channel: Mobile app, Region: UK",
                    "complaints · Channel: Website"]
    assert reminder_line({**p, "repeat": True}) == (
        "[yellow]REMINDER[/] Checkout journey · sev 35 medium · open since 2026-01-27 11:00 "
        "UTC")
    causes = {**p, "root_cause": [
        {"metric": "checkout_dropoff_rate", "elements": [{"channel": "app", "region": "uk"}],
         "share": 0.97}]}
    assert ("│ root cause · Checkout drop-off rate: Channel: Mobile app, Region: UK (97% of "
            "change)") in [line[:95].rstrip() for line in printed(causes)]
    plain = printed(payload_for(PLAIN))
    assert " FIRING sev 35 medium · journey=checkout: checkout_dropoff_rate, complaints " \
           "anomalous " in plain[0]
    assert [line.split("│")[1].strip() for line in plain if "01-27 11:00" in line] == [
        "checkout_dropoff_rate · channel=app, region=uk", "complaints · channel=web"]


def test_mix_text_with_and_without_names() -> None:
    mix = {"dimension": "channel", "value": "web", "share_usual": 0.2, "share_now": 0.4,
           "rate_usual": 0.5, "rate_overall": 0.3, "also": [{"value": "app", "share_usual": 0.1,
                                                              "share_now": 0.3,
                                                              "rate_usual": 0.45}]}
    names = Names(labels={"channel": "Channel"}, values={"channel": {"web": "Website"}})
    assert mix_text(mix, names).startswith("mix shift: Channel: Website went from 20% to 40%")
    assert "; also Channel: app 10% → 30%" in mix_text(mix, names)
    assert mix_text(mix).startswith("mix shift: channel=web went from 20% to 40%")


def test_the_pagerduty_summary_reads_the_names() -> None:
    p = payload_for(CONFIG)
    event = pagerduty_event(p, "key")
    assert event["payload"]["summary"] == (
        "Checkout journey · Checkout drop-off rate +75% (58.7% vs 33.5% expected) in Channel: "
        "Mobile app, Region: UK; also complaints · sev 35 medium")
    # identifiers where PagerDuty groups and routes
    assert event["payload"]["component"] == "checkout"
    assert event["payload"]["class"] == "checkout_dropoff_rate, complaints"
    update = {**p, "update": True, "changes": {
        "since": "t", "new_series": ['checkout_dropoff_rate{channel="web",journey="checkout"}'],
        "new_series_total": 1}}
    assert pagerduty_event(update, "key")["payload"]["summary"] == (
        "Update: also anomalous now: Channel: Website · Checkout journey · Checkout drop-off "
        "rate +75% (58.7% vs 33.5% expected) in Channel: Mobile app, Region: UK; also "
        "complaints · sev 35 medium")
    assert pagerduty_event(payload_for(PLAIN), "key")["payload"]["summary"] == (
        "checkout journey · checkout_dropoff_rate +75% (58.7% vs 33.5% expected) in "
        "channel=app, region=uk; also complaints · sev 35 medium")


def test_grafana_panels_use_the_title_and_variables_the_label_names() -> None:
    built = journey_dashboard(parse_config(CONFIG, env={}), "checkout")
    assert built.title == "cxmon · Checkout" and built.uid == "cxmon-journey-checkout"
    titles = [p.get("title") for p in built.model["panels"]]
    assert "Checkout drop-off rate: value and expected band" in titles
    assert "complaints: severity" in titles
    variables = {v["name"]: v.get("label") for v in built.model["templating"]["list"]}
    assert variables["channel"] == "Channel" and variables["region"] == "Region"
    plain = journey_dashboard(parse_config(PLAIN, env={}), "checkout")
    assert plain.title == "cxmon · checkout"
    assert "checkout_dropoff_rate: value and expected band" in [
        p.get("title") for p in plain.model["panels"]]
    assert {v["name"]: v.get("label") for v in plain.model["templating"]["list"]}[
        "channel"] == "channel"


def test_names_come_back_from_a_stored_payload() -> None:
    """The payload is stored (outbox, alert groups) as JSON: names survive the round trip."""
    p = json.loads(json.dumps(payload_for(CONFIG)))
    assert Names.from_payload(p).where([("channel", "app")]) == "Channel: Mobile app"
    assert not Names.from_payload({"display": "garbage"})
    assert Names.from_payload(PAYLOAD).where([("channel", "app")]) == "channel=app"


def test_a_new_root_cause_is_named_from_its_labels_whatever_its_values_hold() -> None:
    """An update's new culprit is named from the root cause's labels (data), not by splitting
    its ``metric: k=v, ...`` string: a value with ``, `` and ``=`` reads its name too, the
    string stays the identifier text, and a state survives its JSON round trip."""
    from alerts.changes import describe, diff, state

    odd = "a=1, b=2"
    names = Names({"checkout_dropoff_rate": "Checkout drop-off rate"},
                  {"channel": "Channel", "plan": "Plan"},
                  {"channel": {"app": "Mobile app"}, "plan": {odd: "Plan A, then B"}})
    old = {"root_cause": [{"metric": "checkout_dropoff_rate",
                           "elements": [{"channel": "app"}]}]}
    new = {"root_cause": [{"metric": "checkout_dropoff_rate",
                           "elements": [{"channel": "app"}, {"plan": odd, "channel": "app"}]}]}
    told = json.loads(json.dumps(state(old, [], 0)))
    now = json.loads(json.dumps(state(new, [], 0)))
    changes = json.loads(json.dumps(diff(told, now, "t")))
    assert changes["new_root_causes"] == [f"checkout_dropoff_rate: channel=app, plan={odd}"]
    assert changes["new_root_cause_items"] == [{"metric": "checkout_dropoff_rate", "labels": {
        "channel": "app", "plan": odd}}]
    assert describe(changes, {"journey": "checkout"}, names) == (
        "new root cause Checkout drop-off rate: Channel: Mobile app, Plan: Plan A, then B")
    # without names, exactly the identifiers as ever
    assert describe(changes, {"journey": "checkout"}) == (
        f"new root cause checkout_dropoff_rate: channel=app, plan={odd}")


def test_grafana_texts_that_say_a_journey_read_its_name() -> None:
    """"X journey" in the dashboards (a journey's description, the overview's links) is the
    journey's display name; the uid and URL keep the identifier."""
    from dashboards.grafana import overview_dashboard

    named, plain = parse_config(CONFIG, env={}), parse_config(PLAIN, env={})
    assert "KPIs of the Checkout journey," in journey_dashboard(named, "checkout").model[
        "description"]
    assert "KPIs of the checkout journey," in journey_dashboard(plain, "checkout").model[
        "description"]
    links = {ln["title"]: ln["url"] for ln in overview_dashboard(named, ["checkout"]).model[
        "links"]}
    assert links["Checkout journey"] == "/d/cxmon-journey-checkout"
    assert "checkout journey" in {ln["title"] for ln in overview_dashboard(
        plain, ["checkout"]).model["links"]}
