"""Generic webhook (documented body, HMAC signature) and PagerDuty Events API v2, against
local HTTP servers; plus building notifiers from receiver config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from alerts.notifiers.base import NotifyError
from alerts.notifiers.config import PagerDutyReceiverConfig, WebhookReceiverConfig
from alerts.notifiers.console import ConsoleNotifier
from alerts.notifiers.factory import FanOut
from alerts.notifiers.pagerduty import PagerDutyNotifier, pagerduty_event
from alerts.notifiers.slack import SlackNotifier
from alerts.notifiers.webhook import WebhookNotifier, verify_signature, webhook_body
from monitor.clock import FakeClock
from monitor.config import parse_config
from monitor.pipeline import build_notifiers
from tests.fakes.server import FakeServer, Request, Response
from tests.test_slack import GRAFANA, INCIDENT, PAYLOAD

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
WEBHOOK_SECRET = "whsec-0123456789abcdef"
ROUTING_KEY = "R0123456789abcdef0123456789abcdef"


@pytest.fixture
def http() -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.route("POST", "/hook", lambda r: Response(204, b""))
        server.route("POST", "/v2/enqueue", lambda r: Response(
            202, {"status": "success", "message": "Event processed",
                  "dedup_key": r.json()["dedup_key"]}))
        yield server


def webhook(http: FakeServer, **kw: Any) -> WebhookNotifier:
    cfg = WebhookReceiverConfig(url=http.url + "/hook", **kw)
    return WebhookNotifier("ops-hook", cfg, clock=FakeClock(NOW))


def pagerduty(http: FakeServer) -> PagerDutyNotifier:
    cfg = PagerDutyReceiverConfig(routing_key=ROUTING_KEY, events_url=http.url + "/v2/enqueue")
    return PagerDutyNotifier("oncall", cfg, grafana_url="http://grafana.local:3000")


# -- webhook ----------------------------------------------------------------------------------


def test_webhook_posts_the_documented_body_signed(http: FakeServer) -> None:
    webhook(http, secret=WEBHOOK_SECRET, headers={"X-Team": "cx"}).deliver(PAYLOAD, "n-1")
    (req,) = http.requests_to("/hook")
    assert req.json() == {"version": 1, "receiver": "ops-hook", "idempotency_key": "n-1",
                          "notification": PAYLOAD}
    assert req.body == webhook_body("ops-hook", "n-1", PAYLOAD)
    assert req.headers["content-type"] == "application/json"
    assert req.headers["idempotency-key"] == "n-1" and req.headers["x-team"] == "cx"
    ts = req.headers["x-cxmon-timestamp"]
    assert ts == str(int(NOW.timestamp()))
    assert verify_signature(WEBHOOK_SECRET, ts, req.body, req.headers["x-cxmon-signature"])
    assert not verify_signature("wrong", ts, req.body, req.headers["x-cxmon-signature"])
    assert not verify_signature(WEBHOOK_SECRET, ts, req.body + b" ",
                                req.headers["x-cxmon-signature"])


def test_webhook_headers_cxmon_sets_cannot_be_configured() -> None:
    """A configured ``idempotency-key`` or ``x-cxmon-signature`` went out beside cxmon's own
    (two values, the receiver's pick), and a ``Content-Type`` replaced application/json."""
    with pytest.raises(ValueError) as err:
        WebhookReceiverConfig(url="http://hooks.local/h", headers={
            "idempotency-key": "mine", "X-CXMON-Signature": "sha256=0", "X-Team": "cx",
            "Content-Type": "text/plain"})
    said = str(err.value)
    assert "Content-Type, X-CXMON-Signature, idempotency-key: set by cxmon itself" in said
    assert "X-Team" not in said
    WebhookReceiverConfig(url="http://hooks.local/h", headers={"Authorization": "Bearer x"})


def test_webhook_without_secret_is_unsigned(http: FakeServer) -> None:
    webhook(http).deliver(PAYLOAD, "n-1")
    assert "x-cxmon-signature" not in http.requests_to("/hook")[0].headers


def test_webhook_errors(http: FakeServer) -> None:
    n = webhook(http, secret=WEBHOOK_SECRET)
    http.fail(503, headers={"Retry-After": "17"}, body={"error": "busy"})
    with pytest.raises(NotifyError) as busy:
        n.deliver(PAYLOAD, "n-1")
    assert busy.value.retryable and busy.value.retry_after == 17
    later = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    http.fail(429, headers={"Retry-After": later}, body={"error": "slow down"})
    with pytest.raises(NotifyError) as dated:  # the HTTP-date form of Retry-After
        n.deliver(PAYLOAD, "n-1")
    assert dated.value.retry_after is not None and 7000 < dated.value.retry_after <= 7200
    http.fail(400, body={"error": "bad"})
    with pytest.raises(NotifyError) as bad:
        n.deliver(PAYLOAD, "n-1")
    assert not bad.value.retryable and "HTTP 400" in str(bad.value)
    gone = WebhookNotifier("x", WebhookReceiverConfig(url="http://127.0.0.1:9/hook"))
    with pytest.raises(NotifyError) as refused:
        gone.deliver(PAYLOAD, "n-1")
    assert refused.value.retryable
    text = " ".join(map(str, [busy.value, bad.value, refused.value, n, n.config]))
    assert WEBHOOK_SECRET not in text


class _Trickle(httpx.SyncByteStream):
    """An answer arriving a few bytes at a time: each chunk moves the fake clock 1 s."""

    def __init__(self, clock: list[float], chunks: int) -> None:
        self.clock, self.chunks = clock, chunks

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            self.clock[0] += 1.0
            yield b" "


def test_webhook_timeout_bounds_the_whole_answer_not_each_read() -> None:
    """Found by scripts/chaos_restart.py's review: httpx's timeout bounds each read, so a
    receiver trickling its answer held the delivery (and the scheduler's lock, so every tick)
    for as long as it liked."""
    now = [0.0]
    transport = httpx.MockTransport(lambda r: httpx.Response(200, stream=_Trickle(now, 60)))
    cfg = WebhookReceiverConfig(url="http://hooks.local/hook/SECRET-PATH", timeout=10)
    n = WebhookNotifier("ops-hook", cfg, client=httpx.Client(transport=transport),
                        clock=FakeClock(NOW), monotonic=lambda: now[0])
    with pytest.raises(NotifyError) as slow:
        n.deliver(PAYLOAD, "n-1")
    assert slow.value.retryable and "timeout=10s" in str(slow.value)
    assert slow.value.unreachable  # the outbox holds this receiver's other rows back
    assert 10 < now[0] < 13  # gave up at the deadline, not after the 60 s answer
    assert "SECRET-PATH" not in str(slow.value)
    quick = httpx.MockTransport(lambda r: httpx.Response(200, stream=_Trickle(now, 5)))
    WebhookNotifier("ops-hook", cfg, client=httpx.Client(transport=quick),
                    clock=FakeClock(NOW), monotonic=lambda: now[0]).deliver(PAYLOAD, "n-1")


def test_webhook_says_when_the_receiver_itself_is_unreachable(http: FakeServer) -> None:
    """Timeouts, connection errors and 429s are about the receiver, not one payload: the
    outbox stops sending to it for the rest of its pass (alerts/outbox.py)."""
    n = webhook(http)
    http.fail(500, body={"error": "this payload broke us"})
    with pytest.raises(NotifyError) as one:
        n.deliver(PAYLOAD, "n-1")
    http.fail(429, headers={"Retry-After": "3"})
    with pytest.raises(NotifyError) as limited:
        n.deliver(PAYLOAD, "n-1")
    gone = WebhookNotifier("x", WebhookReceiverConfig(url="http://127.0.0.1:9/hook"))
    with pytest.raises(NotifyError) as refused:
        gone.deliver(PAYLOAD, "n-1")
    assert (one.value.unreachable, limited.value.unreachable,
            refused.value.unreachable) == (False, True, True)


# -- PagerDuty --------------------------------------------------------------------------------


def test_pagerduty_trigger_then_resolve_with_the_incident_as_dedup_key(http: FakeServer) -> None:
    pd = pagerduty(http)
    pd.deliver(PAYLOAD, "n-1")
    pd.send({**PAYLOAD, "status": "resolved", "anomalies": []})
    trigger, resolve = (r.json() for r in http.requests_to("/v2/enqueue"))
    assert trigger == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": INCIDENT,
        "client": "cxmon",
        "payload": {
            # what broke, where, how much, why and how bad: all a phone's lock screen shows
            "summary": "checkout journey · checkout_dropoff_rate +96% (0.412 vs 0.210 "
                       "expected) in channel=app, driven by channel=app, region=uk; also "
                       "complaints · sev 82 critical",
            "source": "cxmon",
            "severity": "critical",
            "timestamp": "2026-01-05T10:00:00+00:00",
            "component": "checkout",
            "group": "checkout",
            "class": "checkout_dropoff_rate, complaints",
            "custom_details": {
                "severity": 82, "group": {"journey": "checkout"},
                "anomalies": PAYLOAD["anomalies"], "anomalies_total": 3,
                "root_cause": PAYLOAD["root_cause"],
            },
        },
        "links": [{"href": GRAFANA, "text": "Grafana"},
                  {"href": "https://runbooks.example.com/checkout-dropoff", "text": "Runbook"}],
    }
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                       "dedup_key": INCIDENT}


def test_pagerduty_severity_and_long_keys() -> None:
    low = pagerduty_event({**PAYLOAD, "severity": 10}, "k")
    assert low["payload"]["severity"] == "info"
    long_summary = pagerduty_event({**PAYLOAD, "title": "x" * 2000, "anomalies": []}, "k")
    assert len(long_summary["payload"]["summary"]) == 1024  # PagerDuty's limit
    long_key = pagerduty_event({**PAYLOAD, "incident_key": "x" * 300}, "k")["dedup_key"]
    assert len(long_key) <= 255 and long_key.startswith("cxmon-")


def test_pagerduty_severity_levels_are_configurable(http: FakeServer) -> None:
    """A team whose PagerDuty service pages (high urgency) only for critical and error wants
    cxmon's high (50-74) to wake someone, and below 40 no more than info (no warnings)."""
    cfg = PagerDutyReceiverConfig(routing_key=ROUTING_KEY, events_url=http.url + "/v2/enqueue",
                                  severity={"critical": 50, "error": 40, "warning": 101})
    pd = PagerDutyNotifier("oncall", cfg)
    for severity in (52, 45, 30):
        pd.send({**PAYLOAD, "severity": severity})
    sent = [r.json()["payload"]["severity"] for r in http.requests_to("/v2/enqueue")]
    assert sent == ["critical", "error", "info"]
    default = PagerDutyReceiverConfig(routing_key=ROUTING_KEY).severity
    assert [default.level(s) for s in (80, 60, 30, 10)] == ["critical", "error", "warning",
                                                             "info"]
    with pytest.raises(ValueError, match="critical >= error >= warning"):
        PagerDutyReceiverConfig(routing_key=ROUTING_KEY, severity={"error": 90})
    with pytest.raises(ValueError, match="extra"):
        PagerDutyReceiverConfig(routing_key=ROUTING_KEY, severity={"high": 60})


def test_pagerduty_errors_never_show_the_routing_key(http: FakeServer) -> None:
    pd = pagerduty(http)
    http.fail(429, headers={"Retry-After": "60"}, body={"status": "throttled"})
    with pytest.raises(NotifyError) as throttled:
        pd.deliver(PAYLOAD, "n-1")
    assert throttled.value.retryable and throttled.value.retry_after == 60
    http.fail(400, body={"status": "invalid event", "errors": ["bad"]})
    with pytest.raises(NotifyError) as invalid:
        pd.deliver(PAYLOAD, "n-1")
    assert not invalid.value.retryable
    assert ROUTING_KEY not in " ".join(map(str, [throttled.value, invalid.value, pd, pd.config]))


# -- building notifiers from config -----------------------------------------------------------


def test_receivers_from_config(http: FakeServer) -> None:
    cfg = parse_config(f"""
sources: {{shop: {{type: demo}}}}
metrics: [{{name: m, source: shop, query: complaints, value: complaints}}]
grafana: {{url: "http://grafana.local:3000"}}
alerting:
  route: {{receiver: all}}
  receivers:
    - name: all
      slack: {{channel: "#cx", token: "${{SLACK_BOT_TOKEN}}", api_url: "{http.url}/api/"}}
      pagerduty: {{routing_key: "${{PD_KEY}}", events_url: "{http.url}/v2/enqueue"}}
    - {{name: hook, webhook: {{url: "{http.url}/hook", secret: "${{HOOK_SECRET}}"}}}}
    - {{name: console, console: {{format: json}}}}
    - {{name: blackhole}}
""", env={"SLACK_BOT_TOKEN": "xoxb-secret-token", "PD_KEY": ROUTING_KEY,
         "HOOK_SECRET": WEBHOOK_SECRET})
    notifiers = build_notifiers(cfg)
    assert set(notifiers) == {"all", "hook", "console"}
    fan = notifiers["all"]
    assert isinstance(fan, FanOut)
    assert [type(n) for n in fan.notifiers] == [SlackNotifier, PagerDutyNotifier]
    assert isinstance(notifiers["hook"], WebhookNotifier)
    assert isinstance(notifiers["console"], ConsoleNotifier)
    assert fan.notifiers[0].grafana_url == "http://grafana.local:3000"  # type: ignore[attr-defined]
    dump = json.dumps(cfg.model_dump(mode="json")) + repr(cfg)
    for secret in ("xoxb-secret-token", ROUTING_KEY, WEBHOOK_SECRET):
        assert secret not in dump


def test_fan_out_tries_every_notifier_and_reports_failures() -> None:
    class Ok(ConsoleNotifier):
        def __init__(self) -> None:
            self.got: list[Any] = []

        def send(self, payload: Any) -> None:
            self.got.append(payload)

    class Down(Ok):
        def send(self, payload: Any) -> None:
            raise NotifyError("down", retryable=True, retry_after=30)

    ok = Ok()
    with pytest.raises(NotifyError) as err:
        FanOut([Down(), ok]).deliver(PAYLOAD, "n-1")
    assert ok.got == [PAYLOAD] and err.value.retryable and err.value.retry_after == 30


def test_fake_server_saw_the_requests(http: FakeServer) -> None:
    """The fake answers 404 on unknown paths (a wrong events_url fails loudly)."""
    wrong = PagerDutyNotifier("x", PagerDutyReceiverConfig(routing_key="k",
                                                           events_url=http.url + "/nope"))
    with pytest.raises(NotifyError) as err:
        wrong.send(PAYLOAD)
    assert "HTTP 404" in str(err.value) and not err.value.retryable
    assert isinstance(http.log[-1], Request)


def test_a_fan_out_retry_goes_only_to_the_notifiers_that_failed() -> None:
    """A receiver with a console and a webhook block: while the webhook was down, every
    retry printed (or posted, or paged) the notification again through its sibling."""
    class Ok(ConsoleNotifier):
        def __init__(self) -> None:
            self.got: list[Any] = []

        def send(self, payload: Any) -> None:
            self.got.append(payload)

    class Flaky(Ok):
        failures = 2

        def send(self, payload: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise NotifyError("down", retryable=True)
            super().send(payload)

    ok, flaky = Ok(), Flaky()
    fan = FanOut([ok, flaky])
    for _ in range(2):
        with pytest.raises(NotifyError):
            fan.deliver(PAYLOAD, "n-1")
    fan.deliver(PAYLOAD, "n-1")
    assert ok.got == [PAYLOAD] and flaky.got == [PAYLOAD]
    fan.deliver(PAYLOAD, "n-1")  # settled: a later re-send (a crash before mark_sent) goes
    assert len(ok.got) == 2      # to all again, at least once


def test_pagerduty_records_an_incident_over_before_it_was_sent_as_a_change_event(
        http: FakeServer) -> None:
    """A late incident (found by a catch-up, already resolved) pages no one, but is recorded
    on the service's timeline; a resolve for a key PagerDuty never saw would vanish."""
    http.route("POST", "/v2/change/enqueue", lambda r: Response(202, {"status": "success"}))
    late = {**PAYLOAD, "status": "resolved", "late": True,
            "resolved_at": "2026-01-05T11:00:00+00:00"}
    pagerduty(http).send(late)
    assert http.requests_to("/v2/enqueue") == []
    (change,) = (r.json() for r in http.requests_to("/v2/change/enqueue"))
    assert change["routing_key"] == ROUTING_KEY and "event_action" not in change
    assert change["payload"]["summary"] == (
        "checkout journey · checkout_dropoff_rate +96% (0.412 vs 0.210 expected) in "
        "channel=app, driven by channel=app, region=uk; also complaints (over before it was "
        "reported)")
    assert change["payload"]["timestamp"] == "2026-01-05T10:00:00+00:00"
    details = change["payload"]["custom_details"]
    assert details["incident_key"] == INCIDENT and details["severity"] == 82
    assert details["resolved_at"] == "2026-01-05T11:00:00+00:00"
    assert details["root_cause"] == PAYLOAD["root_cause"]
    assert [link["text"] for link in change["links"]] == ["Grafana", "Runbook"]


def test_pagerduty_change_endpoint_beside_the_events_url_or_configured() -> None:
    def endpoint(**kw: Any) -> str | None:
        return PagerDutyReceiverConfig(routing_key=ROUTING_KEY, **kw).change_endpoint()

    assert endpoint() == "https://events.pagerduty.com/v2/change/enqueue"
    assert endpoint(events_url="http://proxy:8080/pd/v2/enqueue/") == (
        "http://proxy:8080/pd/v2/change/enqueue")
    assert endpoint(events_url="http://proxy:8080/events",
                    change_url="http://proxy:8080/changes") == "http://proxy:8080/changes"
    assert endpoint(events_url="http://proxy:8080/events") is None  # cannot be told: resolve
    with pytest.raises(ValueError, match="change_url"):
        endpoint(change_url="not a url")
