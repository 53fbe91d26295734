"""Values from the data (a region named ``"}; drop``, with a newline, or Slack mrkdwn) stay
inert in the exporter's exposition and in Slack messages; a silent client cannot hold the
exporter's threads."""

from __future__ import annotations

import socket

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import dashboards.exporter as exporter_module
from alerts.blocks import render_message
from dashboards.exporter import Exporter
from monitor.model import series_key
from monitor.pipeline import TickResult
from tests.test_slack import PAYLOAD

HOSTILE = 'uk"} 1\ncxmon_fake 99\n# <!channel> \\ <https://evil|click>'


def test_hostile_label_values_stay_one_label_in_the_exposition() -> None:
    key = series_key("csat", {"journey": "support", "region": HOSTILE})
    scores = pd.DataFrame({"timestamp": pd.Timestamp("2026-01-05", tz="UTC"), "series": [key],
                           "value": [4.1], "expected": 4.0, "lower": 3.0, "upper": 5.0,
                           "score": 0.5, "severity": 10})
    ex = Exporter(registry=CollectorRegistry())
    ex.observe(TickResult("csat", scores=scores))
    samples = [s for fam in text_string_to_metric_families(ex.render().decode())
               for s in fam.samples]
    assert not [s for s in samples if s.name == "cxmon_fake"]  # no injected series
    value = [s for s in samples if s.name == "cxmon_series_value"]
    assert [(s.labels["region"], s.value) for s in value] == [(HOSTILE, 4.1)]


def test_a_silent_client_is_dropped_by_the_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exporter_module, "READ_TIMEOUT", 0.2)
    ex = Exporter(registry=CollectorRegistry())
    port = ex.start("127.0.0.1", 0)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as silent:
            assert silent.recv(1024) == b""  # closed by the exporter, well before 5 s
    finally:
        ex.stop()


def test_mrkdwn_in_a_mix_shift_value_is_escaped_once_and_pings_no_one() -> None:
    anomaly = {**PAYLOAD["anomalies"][1]}
    payload = {**PAYLOAD, "anomalies": [anomaly], "anomalies_total": 1, "root_cause": [
        {"metric": "checkout_dropoff_rate", "elements": [], "mix": {
            "dimension": "channel", "value": "<!channel> & <https://evil|click>",
            "share_usual": 0.2, "share_now": 0.7, "rate_usual": 0.5, "rate_overall": 0.3,
            "portion": 0.9}}]}
    message = render_message(payload)
    texts = [b["text"]["text"] for b in message["blocks"]
             if b.get("type") == "section" and "text" in b]
    cause = next(t for t in texts if "mix shift" in t)
    assert "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in cause
    assert "&amp;amp;" not in cause and "&amp;lt;" not in cause  # escaped once, not twice
    mrkdwn: list[str] = [message["text"]]  # the notification text is mrkdwn too

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                mrkdwn.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(message["blocks"])
    assert not [t for t in mrkdwn if "<!channel>" in t or "<https://evil" in t]
    # the header is plain_text: Slack shows it literally (escaping it would show "&lt;")
    assert message["blocks"][0]["text"]["type"] == "plain_text"
