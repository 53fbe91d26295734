"""The webhook body is documented field by field in docs/webhook.schema.json (JSON Schema
2020-12, linked from the README): real bodies, POSTed by a monitor run through a first message,
updates, reminders and the resolution, and the payload shapes of the other tests (display
names, no data, late, mix shifts), must validate against it, and it must reject what the code
does not send, so the file and the code cannot drift apart."""

from __future__ import annotations

import copy
import json
import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from alerts.notifiers.config import WebhookReceiverConfig
from alerts.notifiers.webhook import WebhookNotifier, verify_signature, webhook_body
from tests.test_display_names import CONFIG, PLAIN, payload_for
from tests.test_pagerduty_flow import HOOK_SECRET, SPIKE
from tests.test_pagerduty_flow import make_flow as make_flow  # the fixture

PAYLOAD = payload_for(PLAIN)  # what the pipeline builds for an incident

SCHEMA = json.loads((Path(__file__).parents[1] / "docs" / "webhook.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())


def problems(body: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in VALIDATOR.iter_errors(body)]


def body(payload: dict[str, Any], key: str = "k|opened|t|hook") -> dict[str, Any]:
    return json.loads(webhook_body("hook", key, payload))


def test_the_schema_is_valid_json_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_real_bodies_of_a_monitor_run_match_the_schema(make_flow: Any) -> None:
    flow = make_flow(extra='      webhook: {url: "${PD_URL}/hook", secret: "${HOOK_SECRET}"}')
    flow.run_until(SPIKE + timedelta(hours=2))
    flow.restart()  # the keys of the run before stay what they were
    flow.run_until(SPIKE + timedelta(hours=12))
    posted = flow.pd.requests_to("/hook")
    bodies = [r.json() for r in posted]
    kinds = {("resolved" if b["notification"]["status"] == "resolved" else
              "repeat" if b["notification"].get("repeat") else
              "update" if b["notification"]["update"] else "first") for b in bodies}
    assert kinds == {"first", "update", "repeat", "resolved"}, kinds
    for req, b in zip(posted, bodies, strict=True):
        assert problems(b) == [], b
        assert req.headers["idempotency-key"] == b["idempotency_key"]
        assert verify_signature(HOOK_SECRET, req.headers["x-cxmon-timestamp"], req.body,
                                req.headers["x-cxmon-signature"])
    keys = [b["idempotency_key"] for b in bodies]
    assert len(keys) == len(set(keys))  # one key per notification, none re-used
    assert {b["notification"]["incident_key"] for b in bodies} == {
        bodies[0]["notification"]["incident_key"]}


def test_other_payload_shapes_match_the_schema() -> None:
    named = payload_for(CONFIG)
    assert "display" in named and "title" in named["anomalies"][0]
    no_data = {**PAYLOAD, "anomalies": [{**PAYLOAD["anomalies"][0], "kind": "no_data",
                                         "value": None, "expected": None, "lower": None,
                                         "upper": None, "change": None, "volume": None,
                                         "last_seen": "2026-01-05T08:00:00+00:00"}]}
    no_data["anomalies"][0].pop("text", None)
    late = {**PAYLOAD, "status": "resolved", "late": True,
            "resolved_at": "2026-01-05T11:00:00+00:00"}
    mix = {**PAYLOAD, "root_cause": [{"metric": "checkout_dropoff_rate",
                                      "at": "2026-01-05T10:00:00+00:00", "elements": [],
                                      "mix": {"dimension": "channel", "value": "web"},
                                      "split": {}, "share": None, "score": None,
                                      "contributions": []}]}
    update = {**PAYLOAD, "update": True, "changes": {
        "since": "2026-01-05T10:05:00+00:00", "severity": {"from": 35, "to": 52,
                                                           "level": "high"},
        "new_points": 3, "new_series": ["m{region=\"us\"}"], "new_series_total": 1,
        "ack_lifted": {"by": "ana", "at": "2026-01-05T10:01:00+00:00",
                       "reason": "severity"}}}
    for payload in (PAYLOAD, named, no_data, late, mix, update):
        assert problems(body(payload)) == [], payload


@pytest.mark.parametrize("change, where", [
    (lambda b: b.pop("version"), ""),  # the body itself
    (lambda b: b.update(version=2), "version"),
    (lambda b: b["notification"].update(status="open"), "notification/status"),
    (lambda b: b["notification"].update(severity=101), "notification/severity"),
    (lambda b: b["notification"].update(surprise=1), "notification"),  # undocumented field
    (lambda b: b["notification"]["anomalies"][0].update(extra=1), "notification/anomalies/0"),
    (lambda b: b["notification"]["anomalies"][0].pop("series"), "notification/anomalies/0"),
    (lambda b: b["notification"].update(opened_at="yesterday"), "notification/opened_at"),
])
def test_the_schema_rejects_what_the_code_does_not_send(change: Any, where: str) -> None:
    b = copy.deepcopy(body(PAYLOAD))
    assert problems(b) == []
    change(b)
    assert any(p.startswith(f"{where}:") for p in problems(b)), problems(b)


@pytest.mark.parametrize("doc", ["README.md", "docs/operations.md"])
def test_the_documented_verification_snippet_accepts_cxmon_and_refuses_the_rest(
        doc: str) -> None:
    """The snippet a consumer copies, run against a request cxmon signed: a fragment with
    undefined names (or a str secret where hmac wants bytes) fails only in their code."""
    text = (Path(__file__).parents[1] / doc).read_text()
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", text, re.S)
                   if "def authentic(" in block)
    scope: dict[str, Any] = {}
    exec(snippet, scope)
    authentic = scope["authentic"]
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(204))
    cfg = WebhookReceiverConfig(url="https://hooks.example.com/cx", secret=HOOK_SECRET)
    WebhookNotifier("hook", cfg, client=httpx.Client(transport=transport)).deliver(PAYLOAD, "k1")
    (req,) = seen
    headers, raw = dict(req.headers), req.read()
    headers = {k.title(): v for k, v in headers.items()}  # as most frameworks spell them
    assert authentic(HOOK_SECRET.encode(), headers, raw)
    assert not authentic(b"another secret", headers, raw)
    assert not authentic(HOOK_SECRET.encode(), {}, raw)  # no headers: refused, not a KeyError
    unsigned = {k: v for k, v in headers.items() if k != "X-Cxmon-Signature"}
    assert not authentic(HOOK_SECRET.encode(), unsigned, raw)
    assert not authentic(HOOK_SECRET.encode(), headers, raw.replace(b'"severity"', b'"Severity"'))
    sent_at = int(headers["X-Cxmon-Timestamp"])
    scope["time"] = SimpleNamespace(time=lambda: sent_at + 3600)  # the snippet's clock
    assert not authentic(HOOK_SECRET.encode(), headers, raw)  # replayed unchanged, an hour on
