"""Slack notifier against a local Slack Web API: the exact blocks sent, threads, the resolved
edit, Slack's limits, error mapping, and exactly-once across a crash."""

from __future__ import annotations

import copy
import email.utils
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.blocks import (
    MAX_BLOCKS,
    MAX_TEXT,
    grafana_link,
    limit_blocks,
    render_message,
    root_cause_items,
)
from alerts.notifiers.base import NotifyError
from alerts.notifiers.config import SlackReceiverConfig
from alerts.notifiers.slack import METADATA_EVENT, SlackNotifier
from alerts.receipts import StoreReceipts
from dashboards.links import panel_id
from monitor.store import Store
from tests.fakes.server import Response
from tests.fakes.slack_server import TOKEN, SlackServer

INCIDENT = "journey=checkout@2026-01-05T10:00:00+00:00"

PAYLOAD: dict[str, Any] = {
    "status": "firing",
    "update": False,
    "incident_key": INCIDENT,
    "group": {"journey": "checkout"},
    "journey": "checkout",
    "severity": 82,
    "title": "journey=checkout: checkout_dropoff_rate, complaints anomalous",
    "opened_at": "2026-01-05T10:00:00+00:00",
    "resolved_at": None,
    "runbook": "https://runbooks.example.com/checkout-dropoff",
    "anomalies": [
        {"id": "a1", "series": 'checkout_dropoff_rate{channel="app",journey="checkout"}',
         "metric": "checkout_dropoff_rate",
         "labels": {"channel": "app", "journey": "checkout", "team": "checkout-squad"},
         "timestamp": "2026-01-05T10:00:00+00:00", "value": 0.412, "expected": 0.21,
         "lower": 0.18, "upper": 0.24, "score": 0.99999, "severity": 82, "direction": "up",
         "change": 0.9619, "detector": "default", "kind": "point"},
        {"id": "a2", "series": 'checkout_dropoff_rate{journey="checkout"}',
         "metric": "checkout_dropoff_rate",
         "labels": {"journey": "checkout", "team": "checkout-squad"},
         "timestamp": "2026-01-05T10:00:00+00:00", "value": 0.305, "expected": 0.2,
         "lower": 0.185, "upper": 0.215, "score": 0.9999, "severity": 61, "direction": "up",
         "change": 0.525, "detector": "default", "kind": "point"},
        {"id": "a3", "series": 'complaints{channel="app",journey="checkout"}',
         "metric": "complaints", "labels": {"channel": "app", "journey": "checkout"},
         "timestamp": "2026-01-05T11:00:00+00:00", "value": 140.0, "expected": 41.0,
         "lower": 25.0, "upper": 58.0, "score": 0.999, "severity": 40, "direction": "up",
         "change": 2.41, "detector": "default", "kind": "point"},
    ],
    "anomalies_total": 3,
    "root_cause": [
        {"elements": [{"channel": "app", "region": "uk"}], "share": 0.78},
        {"elements": [{"channel": "web", "region": "uk"}], "share": 0.12},
    ],
}

FEEDBACK_VALUE = '{"incident":"' + INCIDENT + '","anomalies":["a1","a2","a3"]}'
GRAFANA = (  # dashboards.links.grafana_link: the metric's panel, 6 h before to 1 h after
    "http://grafana.local:3000/d/cxmon-journey-checkout/cxmon-journey-checkout?orgId=1"
    "&from=1767585600000&to=1767614400000&var-channel=app&viewPanel=982310"
)


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


EXPECTED_TEXT = ("Anomaly: checkout journey · checkout_dropoff_rate +96% (0.412 vs 0.210 "
                 "expected) in channel=app, driven by channel=app, region=uk; also complaints"
                 " · sev 82 critical")
EXPECTED_BLOCKS = [
    {"type": "header", "text": plain(
        ":red_circle: Anomaly · checkout journey · checkout_dropoff_rate +96% in channel=app,"
        " driven by channel=app, region=uk; also complaints")},
    {"type": "section", "fields": [
        md("*Severity*\n:red_circle: 82 · critical"),
        md("*Journey*\ncheckout"),
        md("*Metric*\ncheckout_dropoff_rate, complaints"),
        md("*Since*\n2026-01-05 10:00 UTC"),
    ]},
    {"type": "section", "text": md(
        "*checkout_dropoff_rate* · channel=app at 2026-01-05 10:00 UTC\n"
        "*Value 0.412* vs expected 0.210 (band 0.180–0.240), *+96%* · sev 82")},
    {"type": "section", "text": md(
        "*Root cause*: where the change came from\n"
        "• `channel=app` `region=uk` — 78% of change\n"
        "• `channel=web` `region=uk` — 12% of change")},
    {"type": "section", "text": md(
        "*Related anomalies* (2, times UTC)\n"
        "• checkout_dropoff_rate · total: 0.305 vs 0.200 (+52%), sev 61, 10:00\n"
        "• complaints · channel=app: 140 vs 41 (+241%), sev 40, 11:00")},
    {"type": "actions", "block_id": "cxmon_actions", "elements": [
        {"type": "button", "action_id": "cxmon_grafana", "url": GRAFANA,
         "text": plain("Open in Grafana")},
        {"type": "button", "action_id": "cxmon_runbook",
         "url": "https://runbooks.example.com/checkout-dropoff", "text": plain("Runbook")},
        {"type": "button", "action_id": "cxmon_ack", "text": plain("Acknowledge"),
         "value": FEEDBACK_VALUE, "style": "primary"},
        {"type": "button", "action_id": "cxmon_not_anomaly", "text": plain("Not an anomaly"),
         "value": FEEDBACK_VALUE, "confirm": {
             "title": plain("Not an anomaly?"), "text": plain(
                 "Marks these anomalies as a false alarm and resolves the incident wherever it"
                 " was sent (PagerDuty too): for 7 days cxmon alerts on these series only for"
                 " a deviation about ten times rarer than this one."),
             "confirm": plain("Yes, false alarm"), "deny": plain("Cancel")}},
        {"type": "button", "action_id": "cxmon_expected", "text": plain("Expected change"),
         "value": FEEDBACK_VALUE, "confirm": {
             "title": plain("Expected change?"), "text": plain(
                 "A known cause (a promotion, a release, a planned outage): cxmon alerts on"
                 " these series only for a much rarer deviation for the rest of the day, and at"
                 " this hour of the week for the next 4 weeks."),
             "confirm": plain("Yes, expected"), "deny": plain("Cancel")}},
    ]},
    {"type": "context", "elements": [md(f"cxmon · incident `{INCIDENT}`")]},
]


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer() as server:
        yield server


def notifier(server: SlackServer, **kw: Any) -> SlackNotifier:
    cfg = SlackReceiverConfig(token=TOKEN, channel="#checkout-alerts", api_url=server.api_url)
    return SlackNotifier("checkout", cfg, grafana_url="http://grafana.local:3000", **kw)


def update_of(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    out.update(changes)
    return out


def test_the_exact_message_sent_for_a_known_incident(slack: SlackServer) -> None:
    notifier(slack).deliver(PAYLOAD, "n-1")
    assert len(slack.messages) == 1
    msg = slack.messages[0]
    assert msg["channel"] == slack.channel_id("#checkout-alerts")
    assert msg["thread_ts"] is None
    assert msg["text"] == EXPECTED_TEXT
    assert msg["attachments"] == [
        {"color": "#D32F2F", "fallback": EXPECTED_TEXT, "blocks": EXPECTED_BLOCKS}
    ]
    assert msg["metadata"] == {
        "event_type": METADATA_EVENT,
        "event_payload": {"idempotency_key": "n-1", "incident_key": INCIDENT},
    }


def test_updates_go_to_the_thread_and_resolution_closes_it(slack: SlackServer) -> None:
    n = notifier(slack)
    n.deliver(PAYLOAD, "n-1")
    root = slack.messages[0]["ts"]
    n.deliver(update_of(PAYLOAD, update=True, severity=90), "n-2")
    resolved = update_of(PAYLOAD, status="resolved", anomalies=[], anomalies_total=0,
                         resolved_at="2026-01-05T14:30:00+00:00",
                         title="journey=checkout: resolved",
                         measures=[{"metric": "checkout_dropoff_rate"}, {"metric": "complaints"}])
    n.deliver(resolved, "n-3")

    assert [m["thread_ts"] for m in slack.messages] == [None, root, root]
    update_header = slack.messages[1]["attachments"][0]["blocks"][0]["text"]["text"]
    assert update_header.startswith(":red_circle: Update · checkout journey · ")
    assert slack.messages[1]["text"].endswith(" · sev 90 critical")
    assert slack.messages[2]["text"] == (  # the thread's last word says what recovered
        "Resolved: checkout journey · checkout_dropoff_rate, complaints back to normal"
        " after 4 h 30 min · peak sev 82")
    reply = slack.messages[2]["attachments"][0]
    assert reply["color"] == "#2E7D32"
    assert reply["blocks"][2] == {"type": "section", "text": md(
        "Back to normal. Open from 2026-01-05 10:00 UTC to 2026-01-05 14:30 UTC (4 h 30 min);"
        " this thread is closed.")}

    # the first message is edited in place: resolved, green, no feedback buttons
    assert len(slack.updates) == 1
    edit = slack.updates[0]
    assert (edit["channel"], edit["ts"]) == (slack.messages[0]["channel"], root)
    blocks = edit["attachments"][0]["blocks"]
    assert edit["attachments"][0]["color"] == "#2E7D32"
    assert blocks[0]["text"]["text"].startswith(":white_check_mark: Resolved · checkout journey")
    actions = next(b for b in blocks if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["cxmon_grafana", "cxmon_runbook"]
    assert blocks[2:5] == EXPECTED_BLOCKS[2:5]  # what happened is still in the root message
    assert blocks[-1] == {"type": "context", "elements": [
        md(f"cxmon · incident `{INCIDENT}` · resolved, see thread")]}


def test_a_second_delivery_of_the_same_notification_posts_nothing(slack: SlackServer) -> None:
    n = notifier(slack)
    n.deliver(PAYLOAD, "n-1")
    n.deliver(PAYLOAD, "n-1")
    n.send(PAYLOAD)
    n.send(PAYLOAD)  # without a key, the payload is the key
    assert len(slack.messages) == 2


@pytest.mark.parametrize("threaded", [False, True])
def test_crash_after_post_before_receipt_is_recovered_not_reposted(
    slack: SlackServer, store: Store, threaded: bool
) -> None:
    """The process dies after Slack accepted the message but before its ts was recorded."""
    first = notifier(slack, receipts=StoreReceipts(store))
    # threaded: the incident's first message; else another incident's (the channel id is known)
    first.deliver(PAYLOAD if threaded else update_of(PAYLOAD, incident_key="other"), "n-0")
    payload = update_of(PAYLOAD, update=threaded)

    class Died(BaseException):
        pass

    def die(*_a: Any, **_k: Any) -> None:
        raise Died

    first.receipts.posted = die  # type: ignore[method-assign]
    with pytest.raises(Died):
        first.deliver(payload, "n-1")
    before = len(slack.messages)

    restarted = notifier(slack, receipts=StoreReceipts(store))
    restarted.deliver(payload, "n-1")
    restarted.deliver(payload, "n-1")
    assert len(slack.messages) == before
    receipt = restarted.receipts.get("n-1")
    assert receipt is not None and receipt.ts == slack.messages[-1]["ts"]
    assert slack.calls("conversations.replies" if threaded else "conversations.history") == 1


def test_crash_on_a_receivers_very_first_message_reposts_when_only_the_name_is_known(
    slack: SlackServer,
) -> None:
    """Without a channel id, Slack's history cannot be searched: at-least-once, not lost."""
    n = notifier(slack)
    n.receipts.start("n-1", "checkout", INCIDENT, None, PAYLOAD)  # started, then died
    n.deliver(PAYLOAD, "n-1")
    assert len(slack.messages) == 1 and slack.calls("conversations.history") == 0
    by_id = SlackNotifier("checkout", SlackReceiverConfig(
        token=TOKEN, channel=slack.channel_id("#checkout-alerts"), api_url=slack.api_url))
    by_id.receipts.start("n-2", "checkout", "other", None, PAYLOAD)
    by_id.deliver(PAYLOAD, "n-2")  # looked up (not found), then posted
    assert len(slack.messages) == 2 and slack.calls("conversations.history") == 1
    assert slack.messages[1]["channel"] == slack.messages[0]["channel"]


def test_thread_survives_a_restart(slack: SlackServer, store: Store) -> None:
    notifier(slack, receipts=StoreReceipts(store)).deliver(PAYLOAD, "n-1")
    notifier(slack, receipts=StoreReceipts(store)).deliver(update_of(PAYLOAD, update=True), "n-2")
    assert slack.messages[1]["thread_ts"] == slack.messages[0]["ts"]


def test_errors_say_whether_a_retry_can_help_and_never_show_the_token(
    slack: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    n = notifier(slack)
    slack.rate_limit(1, retry_after=42)
    with pytest.raises(NotifyError) as rate:
        n.deliver(PAYLOAD, "n-1")
    assert rate.value.retryable and rate.value.retry_after == 42
    assert rate.value.unreachable  # the workspace's limit: the receiver's other sends wait

    slack.down = True
    with pytest.raises(NotifyError) as down:
        n.deliver(PAYLOAD, "n-2")
    assert down.value.retryable and "503" in str(down.value) and not down.value.unreachable
    slack.down = False

    bad = SlackNotifier("x", SlackReceiverConfig(token="xoxb-wrong-secret", channel="#c",
                                                 api_url=slack.api_url))
    with pytest.raises(NotifyError) as auth:
        bad.deliver(PAYLOAD, "n-3")
    assert not auth.value.retryable and "invalid_auth" in str(auth.value)

    gone = SlackNotifier("x", SlackReceiverConfig(token=TOKEN, channel="#c",
                                                  api_url="http://127.0.0.1:9/api/"))
    with pytest.raises(NotifyError) as refused:
        gone.deliver(PAYLOAD, "n-4")
    assert refused.value.retryable and refused.value.unreachable  # later sends wait a pass

    everything = " ".join([str(rate.value), str(down.value), str(auth.value),
                           str(refused.value), repr(n), repr(n.config), caplog.text])
    assert TOKEN not in everything and "xoxb-wrong-secret" not in everything
    assert slack.messages == []


def test_message_limits_are_respected_and_truncation_says_so() -> None:
    many = [
        {**PAYLOAD["anomalies"][0], "id": f"{i:032d}",
         "labels": {"channel": "app", "region": f"region-{i}-" + "x" * 60}}
        for i in range(300)
    ]
    payload = update_of(PAYLOAD, anomalies=many, anomalies_total=1000, title="t" * 400)
    message = render_message(payload, grafana_url="http://g")
    blocks = message["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= 150
    assert blocks[0]["text"]["text"].endswith("… (truncated)")
    related = next(b for b in blocks if b["type"] == "section"
                   and b.get("text", {}).get("text", "").startswith(
                       "*Related anomalies* (999, times UTC)"))
    assert len(related["text"]["text"]) <= MAX_TEXT
    assert related["text"]["text"].rsplit("\n", 1)[-1].startswith("… (truncated: ")
    value = blocks[-2]["elements"][-1]["value"]
    assert len(value) <= 2000 and value.startswith('{"incident":')

    fifty_five = [{"type": "header"}] + [{"type": "section", "n": i} for i in range(52)] + [
        {"type": "actions"}, {"type": "context"}]
    limited = limit_blocks(fifty_five)
    assert len(limited) == MAX_BLOCKS
    assert limited[0] == {"type": "header"} and limited[-2:] == fifty_five[-2:]
    assert limited[-3]["elements"][0]["text"] == (
        "… 6 more blocks not shown (truncated: Slack allows 50 per message)")


def test_grafana_link_is_the_dashboards_link() -> None:
    """Slack links to the panel the generated dashboard really has (one link builder)."""
    assert grafana_link(PAYLOAD, "http://grafana.local:3000/") == GRAFANA
    assert GRAFANA.endswith(f"viewPanel={panel_id('checkout_dropoff_rate')}")
    no_journey = update_of(PAYLOAD, journey=None)
    link = grafana_link(no_journey, "http://g")
    assert link is not None and link.startswith("http://g/d/cxmon-overview/cxmon-overview?")
    assert "viewPanel" not in link  # the overview has no per-metric panel ids
    resolved = update_of(PAYLOAD, status="resolved", anomalies=[], anomalies_total=0,
                         resolved_at="2026-01-05T14:30:00+00:00",
                         measures=[{"metric": "checkout_dropoff_rate"}])
    link = grafana_link(resolved, "http://g")  # the panel of what recovered, whole incident
    assert link is not None and link.endswith(f"viewPanel={panel_id('checkout_dropoff_rate')}")
    assert "from=1767585600000&to=1767627000000" in link  # 04:00 to 15:30 UTC


def test_root_cause_shapes() -> None:
    want = [(None, {"channel": "app", "region": "uk"}, 0.78)]
    assert root_cause_items([{"elements": [{"channel": "app", "region": "uk"}],
                              "share": 0.78}]) == want
    assert root_cause_items({"root_causes": [{"elements": [{"channel": "app", "region": "uk"}],
                                              "share": 0.78, "score": 0.9}]}) == want
    assert root_cause_items([{"labels": {"channel": "app", "region": "uk"},
                              "contribution": 0.78}]) == want
    two = root_cause_items([{  # the incidents module's shape: one item per element
        "metric": "complaints", "elements": [{"channel": "app"}, {"region": "uk"}],
        "share": 0.9, "contributions": [{"element": {"region": "uk"}, "share": 0.3},
                                        {"element": {"channel": "app"}, "share": 0.6}]}])
    assert two == [("complaints", {"channel": "app"}, 0.6), ("complaints", {"region": "uk"}, 0.3)]
    assert root_cause_items(None) == [] and root_cause_items("junk") == []
    no_rc = render_message(update_of(PAYLOAD, root_cause=None))
    assert not any("Root cause" in str(b) for b in no_rc["blocks"])
    with_metric = render_message(update_of(PAYLOAD, root_cause=[
        {"metric": "complaints", "elements": [{"channel": "app"}], "share": 0.5}],
        measures=[{"metric": "checkout_dropoff_rate", "first_at": "2026-01-05T10:00:00+00:00"},
                  {"metric": "complaints", "first_at": "2026-01-05T11:00:00+00:00"}]))
    texts = [b.get("text", {}).get("text", "") for b in with_metric["blocks"]]
    assert "*Root cause*: where the change came from\n"\
        "• *complaints*: `channel=app` — 50% of change" in texts
    assert any(t.startswith("*Related anomalies* (2, times UTC)\nMoved in this order: "
                            "checkout_dropoff_rate (10:00) → complaints (11:00)\n• ")
               for t in texts)


def test_label_values_are_escaped_for_mrkdwn() -> None:
    """``<``, ``>`` and ``&`` in data-driven label values reach Slack as entities: a value
    ``<!channel>`` must not ping the channel nor ``<https://x|y>`` become a link."""
    a = {**PAYLOAD["anomalies"][0], "labels": {"journey": "checkout",
                                                "page": "<!channel> <https://evil|x> a&b"}}
    payload = update_of(PAYLOAD, anomalies=[a, a], anomalies_total=2,
                        title="journey=checkout: page=<!here> anomalous",
                        root_cause=[{"elements": [{"page": "<!channel>"}], "share": 1.0}])
    message = render_message(payload)
    texts = [message["text"]] + [
        t["text"] for b in message["blocks"] if b["type"] in ("section", "context")
        for t in ([b["text"]] if "text" in b else []) + b.get("fields", [])
        + b.get("elements", []) if t.get("type") == "mrkdwn"]
    joined = "\n".join(texts)
    assert "<" not in joined and ">" not in joined
    assert "&lt;!channel&gt; &lt;https://evil|x&gt; a&amp;b" in joined
    assert " in page=&lt;!channel&gt; &lt;https://evil|x&gt; a&amp;b," in message["text"]


def test_other_4xx_dead_letter_and_a_dated_retry_after_is_honoured(slack: SlackServer) -> None:
    """A 404 (a wrong ``api_url`` path) was retried for 36 minutes, and a Retry-After given
    as an HTTP date was ignored (the README promises both as for webhooks)."""
    n = notifier(slack)
    slack.http.fail(404, 1, body={"error": "no such path"})
    with pytest.raises(NotifyError) as missing:
        n.deliver(PAYLOAD, "n-1")
    assert not missing.value.retryable
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    slack.http.fail(429, 1, headers={"Retry-After": when}, body={"ok": False})
    with pytest.raises(NotifyError) as rate:
        n.deliver(PAYLOAD, "n-2")
    assert rate.value.retryable and 3500 < (rate.value.retry_after or 0) <= 3600


def test_a_5xx_keeps_the_receipt_so_the_retry_looks_before_posting(slack: SlackServer) -> None:
    """A gateway's 504 does not prove Slack did not post: the receipt was dropped and the
    retry posted blind (a duplicate if the first call had gone through)."""
    channel = slack.channel_id("#checkout-alerts")
    n = SlackNotifier("checkout", SlackReceiverConfig(token=TOKEN, channel=channel,
                                                      api_url=slack.api_url))
    slack.http.fail(504, 1)
    with pytest.raises(NotifyError):
        n.deliver(PAYLOAD, "n-1")
    assert n.receipts.get("n-1") is not None
    n.deliver(PAYLOAD, "n-1")
    assert slack.calls("conversations.history") == 1 and len(slack.messages) == 1


@pytest.mark.parametrize("error", ["message_not_found", "edit_window_closed"])
def test_a_first_message_that_cannot_be_edited_does_not_dead_letter_the_resolution(
        slack: SlackServer, caplog: Any, error: str) -> None:
    """The root was deleted (or is too old to edit): the "back to normal" reply is in the
    thread already, so the resolution is delivered; only the green edit is lost, and said."""
    caplog.set_level(logging.WARNING, logger="alerts.notifiers.slack")
    n = notifier(slack)
    n.deliver(PAYLOAD, "n-1")
    slack.http.route("POST", "/api/chat.update",
                     lambda req: Response(200, {"ok": False, "error": error}))
    resolved = update_of(PAYLOAD, status="resolved", anomalies=[], anomalies_total=0,
                         resolved_at="2026-01-05T14:30:00+00:00")
    n.deliver(resolved, "n-2")  # no NotifyError: delivered
    assert len(slack.messages) == 2 and slack.updates == []
    assert f"could not mark the first message of {INCIDENT} resolved" in caplog.text
    assert error in caplog.text


def test_an_ok_answer_without_ts_is_retried_and_looked_up_not_stored_as_none(
        slack: SlackServer) -> None:
    channel = slack.channel_id("#checkout-alerts")
    n = SlackNotifier("checkout", SlackReceiverConfig(token=TOKEN, channel=channel,
                                                      api_url=slack.api_url))
    slack.http.fail(200, 1, body={"ok": True})
    with pytest.raises(NotifyError) as exc:
        n.deliver(PAYLOAD, "n-1")
    assert exc.value.retryable and "no channel or ts" in str(exc.value)
    receipt = n.receipts.get("n-1")
    assert receipt is not None and receipt.ts is None  # not the string "None"
    n.deliver(PAYLOAD, "n-1")
    assert slack.calls("conversations.history") == 1 and len(slack.messages) == 1
    assert n.receipts.get("n-1").ts == slack.messages[0]["ts"]  # type: ignore[union-attr]


def test_counts_and_means_are_shown_to_three_significant_digits() -> None:
    """A forecast of 18.221 complaints or a CSAT of 3.533 is noise after the third digit:
    the demo's returns incident read "expected 18.221 (band 0–37.494)"."""
    a = {**PAYLOAD["anomalies"][2], "labels": {"channel": "store", "journey": "returns"},
         "value": 76.0, "expected": 18.221, "lower": 0.0, "upper": 37.494, "change": 3.17}
    csat = {**a, "id": "c", "metric": "csat", "value": 3.533, "expected": 4.302,
            "lower": 3.978, "upper": 4.626, "change": -0.18}
    message = render_message(update_of(PAYLOAD, anomalies=[a, csat], anomalies_total=2))
    texts = "\n".join(b["text"]["text"] for b in message["blocks"] if "text" in b)
    assert "*Value 76* vs expected 18.2 (band 0–37.5)" in texts
    assert "3.53 vs 4.30 (-18%)" in texts
    assert "18.221" not in texts and "37.494" not in texts


def test_the_notification_preview_says_what_broke_where_how_much_and_why() -> None:
    """The ``text`` (the phone's notification preview) and the header name the measure, its
    change and numbers, the journey, the dimension values and the root cause's driver, not
    only "journey=checkout: ... anomalous"; a resolution says what recovered and after how
    long; a silence says no data, not a value."""
    csat = {**PAYLOAD["anomalies"][1], "metric": "csat", "labels": {"journey": "support"},
            "value": 3.533, "expected": 4.302, "change": -0.18, "severity": 49}
    payload = update_of(PAYLOAD, journey="support", group={"journey": "support"}, severity=49,
                        anomalies=[csat], anomalies_total=1, root_cause=[
                            {"metric": "csat", "elements": [{"channel": "contact-centre"}],
                             "share": 1.2}])
    message = render_message(payload)
    assert message["text"] == ("Anomaly: support journey · csat -18% (3.53 vs 4.30 expected),"
                               " driven by channel=contact-centre · sev 49 medium")
    assert message["blocks"][0]["text"]["text"] == (
        ":large_yellow_circle: Anomaly · support journey · csat -18%,"
        " driven by channel=contact-centre")

    silent = {**PAYLOAD["anomalies"][0], "kind": "no_data", "detector": "no_data",
              "value": 9.0, "change": None, "last_seen": "2026-01-05T10:15:00+00:00"}
    text = render_message(update_of(PAYLOAD, anomalies=[silent], anomalies_total=1))["text"]
    assert text == ("Anomaly: checkout journey · checkout_dropoff_rate has no data (silent 9"
                    " intervals, data until 01-05 10:15) in channel=app · sev 82 critical")

    total = PAYLOAD["anomalies"][1]
    mix = update_of(PAYLOAD, anomalies=[total], anomalies_total=1, root_cause=[
        {"metric": "checkout_dropoff_rate", "elements": [], "mix": {
            "dimension": "channel", "value": "web", "share_usual": 0.2, "share_now": 0.7,
            "rate_usual": 0.5, "rate_overall": 0.3, "portion": 0.9}}])
    assert render_message(mix)["text"] == (
        "Anomaly: checkout journey · checkout_dropoff_rate +52% (0.305 vs 0.200 expected),"
        " a mix shift: channel=web went from 20% to 70% of the volume · sev 82 critical")
    spread = update_of(mix, root_cause=[{"metric": "checkout_dropoff_rate", "elements": [],
                                         "spread": True}])
    assert render_message(spread)["blocks"][0]["text"]["text"] == (
        ":red_circle: Anomaly · checkout journey · checkout_dropoff_rate +52%,"
        " on every dimension value alike")

    resolved = update_of(PAYLOAD, status="resolved", anomalies=[], anomalies_total=0,
                         resolved_at="2026-01-05T14:30:00+00:00")
    assert render_message(resolved)["text"] == (
        "Resolved: checkout journey back to normal after 4 h 30 min · peak sev 82")
    other = update_of(PAYLOAD, group={"team": "web", "region": "uk"}, journey=None)
    assert render_message(other)["text"].startswith(
        "Anomaly: team=web, region=uk · checkout_dropoff_rate +96% (0.412 vs 0.210 expected)"
        " in channel=app, journey=checkout,")


def test_every_block_kit_limit_holds_for_an_oversized_incident(slack: SlackServer) -> None:
    """Every limit Slack enforces (blocks, header, texts, fields, context elements, buttons,
    button values, URLs, confirmation dialogs), checked by the fake Slack on every message
    posted or edited, for an incident with everything too long: the post is accepted."""
    from tests.fakes.slack_server import block_kit_problems

    long = "v" * 900
    many = [{**PAYLOAD["anomalies"][i % 3], "id": f"{i:040d}", "metric": f"m{i}_" + "x" * 80,
             "labels": {"journey": "checkout", "channel": f"c{i}-{long}", "region": long}}
            for i in range(60)]
    causes = [{"metric": f"m{i}", "elements": [{"channel": long, "region": long}], "share": 0.2}
              for i in range(8)]
    payload = update_of(
        PAYLOAD, anomalies=many, anomalies_total=5000, title="t" * 5000,
        group={"journey": "checkout", "page": long}, incident_key="k" * 4000,
        runbook="https://runbooks.example.com/" + "r" * 3000, root_cause=causes,
        measures=[{"metric": f"m{i}", "first_at": "2026-01-05T10:00:00+00:00"}
                  for i in range(60)])
    message = render_message(payload, grafana_url="http://grafana.local:3000")
    assert block_kit_problems({"attachments": [{"blocks": message["blocks"]}]}) == []
    assert block_kit_problems({"blocks": message["blocks"]}) == []
    notifier(slack).deliver(payload, "n-big")
    assert len(slack.messages) == 1  # the fake refuses anything over a limit (invalid_blocks)

    # the checker itself: every limit is seen
    bad = [{"type": "header", "text": plain("h" * 151)},
           {"type": "section", "text": md("s" * 3001), "fields": [md("f" * 2001)] + [md("")] * 10},
           {"type": "context", "elements": [md("c")] * 11},
           {"type": "actions", "elements": [{"type": "button", "text": plain("b" * 76),
                                             "value": "v" * 2001, "action_id": "a",
                                             "url": "u" * 3001, "confirm": {
                                                 "title": plain("t" * 101),
                                                 "text": plain("x" * 301),
                                                 "confirm": plain("y" * 31),
                                                 "deny": plain("n")}}]},
           *[{"type": "divider"}] * 47]
    assert block_kit_problems({"blocks": bad}) == [
        "51 blocks > 50", "block 0 header: 151 > 150", "block 1 text: 3001 > 3000",
        "block 1: 11 fields > 10", "block 1 field: 2001 > 2000", "block 2: 11 context elements",
        "block 3 button text: 76 > 75", "block 3 button value: 2001 > 2000",
        "block 3 url: 3001 > 3000", "block 3 confirm title: 101 > 100",
        "block 3 confirm text: 301 > 300", "block 3 confirm confirm: 31 > 30"]


def test_related_anomalies_are_one_line_per_series_not_per_hour() -> None:
    """The demo's CSAT incident listed 19 related anomalies, one per hour of 4 series: a wall
    of near-identical lines on a phone. Each series is one line, its worst hour first, with
    how many anomalies it had and over which hours (UTC)."""
    top, total, app = PAYLOAD["anomalies"][0], PAYLOAD["anomalies"][1], PAYLOAD["anomalies"][2]
    hours = [{**total, "id": f"t{h}", "severity": 61 - h,
              "timestamp": f"2026-01-05T{10 + h:02d}:00:00+00:00"} for h in range(4)]
    late = {**app, "id": "late", "severity": 20, "timestamp": "2026-01-06T02:00:00+00:00"}
    message = render_message(update_of(PAYLOAD, anomalies=[top, *hours, app, late],
                                       anomalies_total=7))
    related = next(b["text"]["text"] for b in message["blocks"]
                   if b.get("text", {}).get("text", "").startswith("*Related anomalies*"))
    assert related == (
        "*Related anomalies* (6, times UTC)\n"
        "• checkout_dropoff_rate · total: 0.305 vs 0.200 (+52%), sev 61, 10:00;"
        " 4 anomalies 10:00–13:00\n"
        "• complaints · channel=app: 140 vs 41 (+241%), sev 40, 11:00;"
        " 2 anomalies 01-05 11:00–01-06 02:00")


# -- read as the person who must act ---------------------------------------------------------


def test_a_reminder_says_reminder_in_its_header_not_update() -> None:
    """A reminder's notification text said "Reminder: no change" under a header saying
    "Update": the header is what a channel's scroll-back shows."""
    reminder = update_of(PAYLOAD, update=True, repeat=True,
                         changes={"since": "2026-01-05T12:00:00+00:00"})
    msg = render_message(reminder)
    header = msg["blocks"][0]["text"]["text"]
    assert header.startswith(":red_circle: Reminder · checkout journey · ")
    assert msg["text"].startswith("Reminder: ")
    update = render_message(update_of(PAYLOAD, update=True))
    assert update["blocks"][0]["text"]["text"].startswith(":red_circle: Update · ")


def test_resolution_durations_read_in_days_and_hours_and_severity_is_the_peak() -> None:
    """76 h 00 min made the reader divide by 24; the resolved severity is the peak."""
    resolved = update_of(PAYLOAD, status="resolved", anomalies=[], anomalies_total=0,
                         opened_at="2026-01-28T09:00:00+00:00",
                         resolved_at="2026-01-31T13:00:00+00:00",
                         measures=[{"metric": "complaints"}])
    msg = render_message(resolved)
    assert msg["text"] == ("Resolved: checkout journey · complaints back to normal after"
                           " 3 d 4 h · peak sev 82")
    assert msg["blocks"][1]["fields"][0] == md("*Severity*\n:white_check_mark: peak 82 · resolved")
    assert msg["blocks"][2] == {"type": "section", "text": md(
        "Back to normal. Open from 2026-01-28 09:00 UTC to 2026-01-31 13:00 UTC (3 d 4 h);"
        " this thread is closed.")}
    short = render_message({**resolved, "resolved_at": "2026-01-28T09:45:00+00:00"})
    assert short["text"].endswith("back to normal after 45 min · peak sev 82")


def test_a_change_that_rounds_to_nothing_shows_no_sign() -> None:
    """-0.0 and -0.04 % read as "-0" and "-0%": a direction the data does not have."""
    flat = {**PAYLOAD["anomalies"][2], "metric": "complaints", "value": -0.0,
            "expected": 0.0, "lower": -0.0, "upper": 3.0, "change": -0.0004}
    msg = render_message(update_of(PAYLOAD, anomalies=[PAYLOAD["anomalies"][0], flat],
                                   anomalies_total=2))
    related = msg["blocks"][-3]["text"]["text"]
    assert related.endswith("• complaints · channel=app: 0 vs 0 (0%), sev 40, 11:00")
    top = render_message(update_of(PAYLOAD, anomalies=[flat], anomalies_total=1))
    assert "*Value 0* vs expected 0 (band 0–3), *0%*" in top["blocks"][2]["text"]["text"]
    assert "-0" not in top["text"] and "+0%" not in top["text"]


def test_anomalies_left_out_are_counted_as_anomalies() -> None:
    """The related lines are one per series, so "… and 14 more not shown" did not say 14 of
    what; the count is of anomalies, as the lines' "3 anomalies 13:00–15:00" are."""
    msg = render_message(update_of(PAYLOAD, anomalies_total=17))
    related = msg["blocks"][4]["text"]["text"]
    assert related.splitlines()[0] == "*Related anomalies* (16, times UTC)"
    assert related.splitlines()[-1] == "… and 14 more anomalies not shown"
    one = render_message(update_of(PAYLOAD, anomalies_total=4))["blocks"][4]["text"]["text"]
    assert one.splitlines()[-1] == "… and 1 more anomaly not shown"


def test_the_resolution_keeps_the_runbook_button_of_its_measures() -> None:
    """A resolution carries no anomalies, so its payload had no runbook and the thread's last
    message lost the Runbook button the first one had."""
    from alerts.payload import incident_payload
    from monitor.incidents import IncidentTracker
    from monitor.model import Anomaly, Direction, Series

    s = Series("checkout_dropoff_rate", {"journey": "checkout", "channel": "app"}, ("channel",))
    t0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
    tracker = IncidentTracker(["journey"])
    tracker.observe([Anomaly(s.key, s.metric, s.labels, t0, 0.41, 0.21, 0.18, 0.24, 0.999, 60,
                             Direction.UP, "default")], t0)
    (resolved,) = tracker.resolve_quiet(t0 + timedelta(days=2))
    assert resolved.status == "resolved" and not resolved.anomalies
    books = {"checkout_dropoff_rate": "https://runbooks.example.com/checkout-dropoff"}
    payload = incident_payload(resolved, runbooks=books)
    assert payload["runbook"] == "https://runbooks.example.com/checkout-dropoff"
    buttons = next(b for b in render_message(payload)["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in buttons["elements"]] == ["cxmon_runbook"]


def test_the_worst_series_earlier_hours_stay_in_its_block_not_in_related() -> None:
    """The demo's first checkout message listed, as its only "related anomaly", the worst
    series an hour earlier: read as a second problem. Its hours now go under the worst
    anomaly, and "Related anomalies" lists other series only."""
    worst = PAYLOAD["anomalies"][0]
    earlier = {**worst, "id": "a0", "timestamp": "2026-01-05T09:00:00+00:00", "severity": 70}
    msg = render_message(update_of(PAYLOAD, anomalies=[worst, earlier], anomalies_total=2))
    assert msg["blocks"][2]["text"]["text"].splitlines()[-1] == (
        "Worst of 2 anomalies of this series, 09:00–10:00 UTC")
    assert not any("Related anomalies" in b.get("text", {}).get("text", "")
                   for b in msg["blocks"])

    # with other series: they alone are counted and listed; left-out ones are still counted
    msg = render_message(update_of(PAYLOAD, anomalies=[worst, earlier, *PAYLOAD["anomalies"][1:]],
                                   anomalies_total=6))
    assert msg["blocks"][2]["text"]["text"].splitlines()[-1] == (  # 2 left out: maybe its own
        "Worst of at least 2 anomalies of this series, 09:00–10:00 UTC")
    related = msg["blocks"][4]["text"]["text"].splitlines()
    assert related[0] == "*Related anomalies* (4, times UTC)"
    assert [line.split(":")[0] for line in related[1:3]] == [
        "• checkout_dropoff_rate · total", "• complaints · channel=app"]
    assert related[-1] == "… and 2 more anomalies not shown"
    only_hidden = render_message(update_of(PAYLOAD, anomalies=[worst, earlier],
                                           anomalies_total=5))
    assert only_hidden["blocks"][4]["text"]["text"] == (
        "*Related anomalies* (3, times UTC)\n… and 3 more anomalies not shown")


def test_a_rates_change_also_says_percentage_points() -> None:
    """"drop-off rate +75%" next to "58.7%" read as 75 points more; the worst anomaly of a
    ratio metric adds the change in points. Counts and means keep their relative change only."""
    rate = {**PAYLOAD["anomalies"][0], "unit": "percent", "value": 0.587, "expected": 0.334,
            "lower": 0.249, "upper": 0.419, "change": 0.757}
    worst = render_message(update_of(PAYLOAD, anomalies=[rate], anomalies_total=1))
    assert worst["blocks"][2]["text"]["text"].splitlines()[1] == (
        "*Value 58.7%* vs expected 33.4% (band 24.9%–41.9%), *+76%* (+25.3 pts) · sev 82")
    fall = {**rate, "value": 0.301, "change": -0.099}
    assert "*-10%* (-3.30 pts) · " in render_message(update_of(
        PAYLOAD, anomalies=[fall], anomalies_total=1))["blocks"][2]["text"]["text"]
    count = render_message(update_of(PAYLOAD, anomalies=[PAYLOAD["anomalies"][2]],
                                     anomalies_total=1))["blocks"][2]["text"]["text"]
    assert count.endswith("*+241%* · sev 40") and "pts" not in count
